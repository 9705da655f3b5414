//! Inputs handed over in their planned order, S3 objects fetched several
//! at a time ahead of the reader: the engine sees one order whatever the
//! network does, so the same objects give the same alerts.

use aws_sdk_s3::Client;
use futures_util::stream::{self, StreamExt};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::{s3, Fetched, Planned};

/// The planned inputs, fetched where needed. `s3` is needed when any is an
/// S3 object; `jobs` objects are fetched at once.
pub fn in_order(
    planned: Vec<Planned>,
    s3: Option<(Runtime, Client)>,
    jobs: usize,
) -> Box<dyn Iterator<Item = Fetched>> {
    let Some((runtime, client)) = s3 else {
        return Box::new(planned.into_iter().map(|p| match p {
            Planned::File { path, .. } => Fetched::File(path),
            Planned::Stdin => Fetched::Stdin,
            object @ Planned::S3 { .. } => {
                Fetched::Failed { name: object.name(), error: "no S3 client was set up".to_owned() }
            }
        }));
    };
    // One fetched object waits for the reader besides those in flight.
    let (sender, receiver) = mpsc::channel(1);
    runtime.spawn(async move {
        let mut fetches = stream::iter(planned).map(|p| tokio::spawn(fetch(client.clone(), p))).buffered(jobs.max(1));
        while let Some(joined) = fetches.next().await {
            let fetched = joined.unwrap_or_else(|e| Fetched::Failed {
                name: "an S3 object".to_owned(),
                error: format!("fetch stopped: {e}"),
            });
            if sender.send(fetched).await.is_err() {
                break;
            }
        }
    });
    Box::new(Received { receiver, _runtime: runtime })
}

async fn fetch(client: Client, planned: Planned) -> Fetched {
    match planned {
        Planned::File { path, .. } => Fetched::File(path),
        Planned::Stdin => Fetched::Stdin,
        Planned::S3 { bucket, key, .. } => {
            let name = format!("s3://{bucket}/{key}");
            match s3::fetch(client, bucket, key).await {
                Ok(bytes) => Fetched::Object { name, bytes },
                Err(error) => Fetched::Failed { name, error },
            }
        }
    }
}

struct Received {
    receiver: mpsc::Receiver<Fetched>,
    /// Runs the fetches; dropped (and they with it) when reading ends.
    _runtime: Runtime,
}

impl Iterator for Received {
    type Item = Fetched;

    fn next(&mut self) -> Option<Fetched> {
        self.receiver.blocking_recv()
    }
}
