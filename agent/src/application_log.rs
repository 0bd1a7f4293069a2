//! Writes to the Windows Application event log (reading logs is `sources::eventlog`'s): warnings
//! and errors of the Windows service go there too (source `OnshiWatchAgent`), where a
//! technician looking at the terminal expects them; the full log stays in
//! `<data-dir>\logs\onshi-agent.log`.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::EventLog::{
    EVENTLOG_ERROR_TYPE, EVENTLOG_WARNING_TYPE, RegisterEventSourceW, ReportEventW,
};

/// Event id used for every entry; the text carries the detail.
const EVENT_ID: u32 = 1000;

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// A tracing layer that reports WARN and ERROR events to the Application log.
pub struct ApplicationLogLayer {
    handle: HANDLE,
}

// SAFETY: an event source handle may be used from any thread (ReportEvent is thread-safe).
unsafe impl Send for ApplicationLogLayer {}
// SAFETY: as above; the handle is never mutated after registration.
unsafe impl Sync for ApplicationLogLayer {}

impl ApplicationLogLayer {
    /// Registers the event source; `None` when the event log refuses (the file log still works).
    pub fn new(source: &str) -> Option<ApplicationLogLayer> {
        let name = wide(source);
        // SAFETY: `name` is a NUL-terminated UTF-16 string that outlives the call; a null server
        // name means the local machine.
        let handle = unsafe { RegisterEventSourceW(std::ptr::null(), name.as_ptr()) };
        (!handle.is_null()).then_some(ApplicationLogLayer { handle })
    }
}

#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?} ");
        } else {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value} ");
        } else {
            let _ = write!(self.0, "{}={value} ", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for ApplicationLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let kind = match *event.metadata().level() {
            Level::ERROR => EVENTLOG_ERROR_TYPE,
            Level::WARN => EVENTLOG_WARNING_TYPE,
            _ => return,
        };
        let mut text = Text::default();
        event.record(&mut text);
        let message = wide(text.0.trim_end());
        let strings = [message.as_ptr()];
        // SAFETY: the handle came from RegisterEventSourceW; `strings` holds one NUL-terminated
        // UTF-16 string that outlives the call; no SID and no raw data.
        unsafe {
            ReportEventW(
                self.handle,
                kind,
                0,
                EVENT_ID,
                std::ptr::null_mut(),
                1,
                0,
                strings.as_ptr(),
                std::ptr::null(),
            );
        }
    }
}
