//! `s3://bucket/prefix`: CloudTrail read straight from S3, with the
//! standard AWS credential chain and region, `AWS_ENDPOINT_URL`, and
//! `ROLEWATCH_S3_FORCE_PATH_STYLE` as the Lambda reads them.
//!
//! Listing: without `--since` / `--until`, every key under the prefix is
//! listed and classified as the Lambda classifies keys. With them, the
//! prefix is walked one folder level at a time down to each
//! `CloudTrail/<region>/` folder, other services' folders (`Config/`,
//! `CloudTrail-Digest/`...) are not listed at all, and each region folder
//! is listed from the first day (`StartAfter`) until the first key past
//! the last day: below a region, names sort by date, so a month of one
//! region costs a listing of that month only.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::Client;

use super::layout::{day_folder, key_date, region_folder_len, DateWindow};
use super::{skip_reason, Planned, SkipReason, Skips};

/// The Lambda's switch for S3-compatible test servers.
pub const FORCE_PATH_STYLE_VAR: &str = "ROLEWATCH_S3_FORCE_PATH_STYLE";
/// Where the SDK finds no region (no `AWS_REGION`, no profile), S3's own.
const FALLBACK_REGION: &str = "us-east-1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// `s3://bucket[/prefix]`: `None` for anything else (a local path).
pub fn parse_url(arg: &str) -> Option<Result<S3Url, String>> {
    let rest = arg.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Some(Err(format!("{arg}: no bucket name (expected s3://bucket/prefix)")));
    }
    Some(Ok(S3Url { bucket: bucket.to_owned(), prefix: prefix.to_owned() }))
}

/// `ROLEWATCH_S3_FORCE_PATH_STYLE`: `true` or `false` (any case), unset is false.
pub fn force_path_style(value: Option<&str>) -> Result<bool, String> {
    match value {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(format!("{FORCE_PATH_STYLE_VAR}={v}: expected true or false")),
    }
}

/// An S3 client from the standard chain (environment, profile, SSO, IMDS...).
pub async fn client(force_path_style: bool) -> Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let mut config = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(force_path_style);
    if sdk.region().is_none() {
        config = config.region(Region::new(FALLBACK_REGION));
    }
    Client::from_conf(config.build())
}

/// The log objects under `url`, in key order, and what was passed over.
#[derive(Debug, Default)]
pub struct ObjectList {
    pub planned: Vec<Planned>,
    pub skips: Skips,
}

impl ObjectList {
    fn add(&mut self, bucket: &str, key: &str, size: Option<i64>, window: &DateWindow) {
        match skip_reason(key, window) {
            Some(reason) => self.skips.add(reason, 1),
            None => self.planned.push(Planned::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                size: size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            }),
        }
    }
}

/// Lists `url` (see the module documentation for how).
pub async fn list(client: &Client, url: &S3Url, window: &DateWindow) -> Result<ObjectList, String> {
    let mut out = ObjectList::default();
    if window.is_open() {
        list_flat(client, &url.bucket, &url.prefix, None, window, &mut out).await?;
    } else {
        let mut pending = vec![url.prefix.clone()];
        while let Some(prefix) = pending.pop() {
            if let Some(region_len) = region_folder_len(&prefix) {
                let start_after = window.since.map(|since| format!("{}{}", &prefix[..region_len], day_folder(since)));
                list_flat(client, &url.bucket, &prefix, start_after.filter(|s| *s > prefix), window, &mut out).await?;
            } else {
                list_level(client, &url.bucket, &prefix, window, &mut out, &mut pending).await?;
            }
        }
    }
    out.planned.sort_by_key(Planned::name);
    Ok(out)
}

fn sdk_error(url: String, err: impl std::error::Error) -> String {
    format!("listing {url} failed: {}", DisplayErrorContext(err))
}

/// Every key under `prefix` (after `start_after`), until a key dated after
/// the window's last day.
async fn list_flat(
    client: &Client,
    bucket: &str,
    prefix: &str,
    start_after: Option<String>,
    window: &DateWindow,
    out: &mut ObjectList,
) -> Result<(), String> {
    let mut pages =
        client.list_objects_v2().bucket(bucket).prefix(prefix).set_start_after(start_after).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error(format!("s3://{bucket}/{prefix}"), e))?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            let past_the_end = window.until.is_some_and(|until| key_date(key).is_some_and(|date| date > until));
            if past_the_end && region_folder_len(prefix).is_some() {
                // Names sort by date below a region: nothing after this is in the window.
                out.skips.add(SkipReason::OutsideDates, 1);
                return Ok(());
            }
            out.add(bucket, key, object.size(), window);
        }
    }
    Ok(())
}

/// One folder level: its objects are classified, its folders queued,
/// except other services' folders next to `CloudTrail/`.
async fn list_level(
    client: &Client,
    bucket: &str,
    prefix: &str,
    window: &DateWindow,
    out: &mut ObjectList,
    pending: &mut Vec<String>,
) -> Result<(), String> {
    let mut pages = client.list_objects_v2().bucket(bucket).prefix(prefix).delimiter("/").into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error(format!("s3://{bucket}/{prefix}"), e))?;
        for object in page.contents() {
            if let Some(key) = object.key() {
                out.add(bucket, key, object.size(), window);
            }
        }
        for folder in page.common_prefixes().iter().filter_map(|p| p.prefix()) {
            let service = rolewatch::cloudtrail::service_folder(folder).filter(|s| !s.is_empty());
            if service.is_some_and(|s| s != "CloudTrail") {
                out.skips.add(SkipReason::FolderNotListed, 1);
            } else {
                pending.push(folder.to_owned());
            }
        }
    }
    Ok(())
}

/// One object's bytes, or why not. CloudTrail objects are small (a few
/// MB at most), so each is held whole while it waits for its turn.
pub async fn fetch(client: Client, bucket: String, key: String) -> Result<Vec<u8>, String> {
    let output = client
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| format!("fetch failed: {}", DisplayErrorContext(e)))?;
    let body = output.body.collect().await.map_err(|e| format!("read failed: {}", DisplayErrorContext(e)))?;
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_an_optional_prefix() {
        let url = |s: &str| parse_url(s).map(|r| r.map(|u| (u.bucket, u.prefix)));
        assert_eq!(url("s3://trail/AWSLogs/"), Some(Ok(("trail".into(), "AWSLogs/".into()))));
        assert_eq!(url("s3://trail"), Some(Ok(("trail".into(), String::new()))));
        assert!(matches!(url("s3:///x"), Some(Err(_))));
        assert_eq!(url("events/cloudtrail"), None);
    }

    #[test]
    fn path_style_is_true_or_false_as_in_the_lambda() {
        assert_eq!(force_path_style(None), Ok(false));
        assert_eq!(force_path_style(Some("TRUE")), Ok(true));
        assert!(force_path_style(Some("yes")).unwrap_err().contains(FORCE_PATH_STYLE_VAR));
    }
}
