//! A TCP sink on 127.0.0.1 for network measurements: a guest on QEMU user
//! networking reaches it as 10.0.2.2:$VLAB_SINK_PORT, a container through its
//! own loopback setup. The runner counts what arrived; the student's numbers
//! are held against these counts.

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::observer::{CheckError, Ctx, Observer, Watch};
use crate::evidence::Facts;

/// The sink as an observer: started for a check with `sink = true`.
pub(crate) struct NetworkSink;

impl Observer for NetworkSink {
    fn arm(&self, ctx: &Ctx) -> Result<Option<Box<dyn Watch>>, CheckError> {
        if !ctx.check.sink {
            return Ok(None);
        }
        let sink = Sink::start().map_err(CheckError::io("open a network sink on 127.0.0.1"))?;
        Ok(Some(Box::new(sink)))
    }
}

impl Watch for Sink {
    fn env(&self) -> Vec<(String, std::ffi::OsString)> {
        vec![
            ("VLAB_SINK_PORT".into(), self.port().to_string().into()),
            ("VLAB_SOURCE_PORT".into(), self.source_port().to_string().into()),
        ]
    }

    fn finish(&mut self) -> Result<Facts, CheckError> {
        Ok(self.facts())
    }
}

#[derive(Default)]
struct Tally {
    bytes: u64,
    connections: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// Listening until dropped; `facts()` reports what arrived so far.
pub(crate) struct Sink {
    port: u16,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The receive direction, served beside it.
    source: super::source::Source,
}

impl Sink {
    pub(crate) fn start() -> std::io::Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (stop2, tally2) = (stop.clone(), tally.clone());
        let thread = std::thread::spawn(move || {
            let mut readers = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let (stop3, tally3) = (stop2.clone(), tally2.clone());
                        tally2.lock().unwrap_or_else(|p| p.into_inner()).connections += 1;
                        readers.push(std::thread::spawn(move || {
                            let _ = conn.set_nonblocking(false);
                            let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
                            let mut buf = vec![0u8; 64 * 1024];
                            while !stop3.load(Ordering::Relaxed) {
                                match conn.read(&mut buf) {
                                    Ok(0) => break,
                                    Ok(n) => {
                                        let mut t = tally3.lock().unwrap_or_else(|p| p.into_inner());
                                        let now = Instant::now();
                                        t.first.get_or_insert(now);
                                        t.last = Some(now);
                                        t.bytes += n as u64;
                                    }
                                    Err(e)
                                        if matches!(
                                            e.kind(),
                                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                        ) => {}
                                    Err(_) => break,
                                }
                            }
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for r in readers {
                let _ = r.join();
            }
        });
        Ok(Sink { port, stop, tally, thread: Some(thread), source: super::source::Source::start()? })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The port of the source that sends (`$VLAB_SOURCE_PORT`).
    pub(crate) fn source_port(&self) -> u16 {
        self.source.port()
    }

    /// `sink.bytes`, `sink.connections`, `sink.ms` (first to last byte), `sink.mbit_s`, and the source's `source.*`.
    pub(crate) fn facts(&self) -> Facts {
        let t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let ms = match (t.first, t.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64() * 1000.0,
            _ => 0.0,
        };
        let mut f = Facts::new();
        f.insert("sink.bytes".into(), t.bytes.to_string());
        f.insert("sink.connections".into(), t.connections.to_string());
        f.insert("sink.ms".into(), format!("{ms:.1}"));
        if ms > 0.0 {
            f.insert("sink.mbit_s".into(), format!("{:.1}", t.bytes as f64 * 8.0 / 1000.0 / ms));
        }
        f.extend(self.source.facts());
        f
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn counts_what_arrives_on_loopback() {
        let sink = Sink::start().unwrap();
        let mut c = std::net::TcpStream::connect(("127.0.0.1", sink.port())).unwrap();
        c.write_all(&[7u8; 100_000]).unwrap();
        drop(c);
        let deadline = Instant::now() + Duration::from_secs(5);
        while sink.facts()["sink.bytes"] != "100000" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let f = sink.facts();
        assert_eq!(f["sink.bytes"], "100000");
        assert_eq!(f["sink.connections"], "1");
    }
}
