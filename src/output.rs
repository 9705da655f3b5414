//! Alerts on stdout, in the format asked for; nothing else goes there.

use std::io::{self, BufWriter, StdoutLock, Write};

use rolewatch::alert::Alert;

use crate::cli::Format;

pub struct AlertWriter {
    format: Format,
    out: BufWriter<StdoutLock<'static>>,
    /// A closed pipe (`| head`) ends output, not the run: state is still saved.
    open: bool,
    written: u64,
}

impl AlertWriter {
    pub fn new(format: Format) -> AlertWriter {
        AlertWriter { format, out: BufWriter::new(io::stdout().lock()), open: true, written: 0 }
    }

    pub fn write(&mut self, alert: &Alert) {
        if !self.open {
            return;
        }
        let written = match self.format {
            Format::Json => writeln!(self.out, "{}", alert.to_json()),
            Format::Chat => writeln!(self.out, "{}", rolewatch::chat::notification(alert)),
            Format::Text => write_text(&mut self.out, alert),
        };
        self.open = written.and_then(|()| self.out.flush()).is_ok();
        self.written += 1;
    }

    /// `no alerts` for people when there were none.
    pub fn finish(mut self) {
        if self.format == Format::Text && self.written == 0 && self.open {
            let _ = writeln!(self.out, "no alerts");
        }
        let _ = self.out.flush();
    }
}

/// Two lines an alert: what and when, then who, where and how many.
fn write_text(out: &mut impl Write, alert: &Alert) -> io::Result<()> {
    writeln!(
        out,
        "{:<8} {:<21} {}  {}  {}",
        alert.severity.as_str().to_uppercase(),
        alert.detector,
        alert.last_event_time,
        alert.account_id,
        alert.title
    )?;
    writeln!(
        out,
        "         principal={} role={} source={} events={} key={}",
        alert.principal,
        // AccessDenied records name the probed role only in their message.
        alert.role_arn.as_deref().or(alert.details.get("denied_role_arn").and_then(|v| v.as_str())).unwrap_or("-"),
        alert.source_ip.as_deref().unwrap_or("-"),
        alert.event_count,
        alert.dedup_key
    )
}
