//! The receive direction of the network sink: a TCP listener on 127.0.0.1
//! that sends each connection `SOURCE_BYTES` and closes it. A guest on QEMU
//! user networking reaches it as 10.0.2.2:$VLAB_SOURCE_PORT. The runner counts
//! the bytes its own socket accepted; the guest's figure is held against them.

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::evidence::Facts;

/// What each connection receives: 1 MiB, as much as the probe sends.
pub(crate) const SOURCE_BYTES: usize = 1024 * 1024;

#[derive(Default)]
struct Tally {
    /// Bytes the kernel accepted from the runner's writes.
    bytes: u64,
    connections: u64,
    /// Connections that took all SOURCE_BYTES before the runner closed them.
    complete: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// Serving until dropped; `facts()` reports what was sent so far.
pub(crate) struct Source {
    port: u16,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Source {
    pub(crate) fn start() -> std::io::Result<Source> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (stop2, tally2) = (stop.clone(), tally.clone());
        let thread = std::thread::spawn(move || {
            let mut writers = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (stop3, tally3) = (stop2.clone(), tally2.clone());
                        tally2.lock().unwrap_or_else(|p| p.into_inner()).connections += 1;
                        writers.push(std::thread::spawn(move || serve(conn, &stop3, &tally3)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for w in writers {
                let _ = w.join();
            }
        });
        Ok(Source { port, stop, tally, thread: Some(thread) })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `source.bytes`, `source.connections`, `source.complete`, `source.ms`, `source.mbit_s`.
    pub(crate) fn facts(&self) -> Facts {
        let t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let ms = match (t.first, t.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64() * 1000.0,
            _ => 0.0,
        };
        let mut f = Facts::new();
        f.insert("source.bytes".into(), t.bytes.to_string());
        f.insert("source.connections".into(), t.connections.to_string());
        f.insert("source.complete".into(), t.complete.to_string());
        f.insert("source.ms".into(), format!("{ms:.1}"));
        if ms > 0.0 {
            f.insert("source.mbit_s".into(), format!("{:.1}", t.bytes as f64 * 8.0 / 1000.0 / ms));
        }
        f
    }
}

/// Writes SOURCE_BYTES in chunks, counting what the kernel took, then closes.
fn serve(mut conn: std::net::TcpStream, stop: &AtomicBool, tally: &Mutex<Tally>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_write_timeout(Some(Duration::from_millis(200)));
    let chunk = vec![b'v'; 64 * 1024];
    let mut sent = 0;
    while sent < SOURCE_BYTES && !stop.load(Ordering::Relaxed) {
        let n = (SOURCE_BYTES - sent).min(chunk.len());
        match conn.write(&chunk[..n]) {
            Ok(0) => break,
            Ok(n) => {
                sent += n;
                let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                t.first.get_or_insert(now);
                t.last = Some(now);
                t.bytes += n as u64;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    if sent == SOURCE_BYTES {
        tally.lock().unwrap_or_else(|p| p.into_inner()).complete += 1;
    }
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

impl Drop for Source {
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
    use std::io::Read;

    #[test]
    fn sends_each_connection_its_bytes_and_counts_them() {
        let source = Source::start().unwrap();
        let mut c = std::net::TcpStream::connect(("127.0.0.1", source.port())).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), SOURCE_BYTES);
        let deadline = Instant::now() + Duration::from_secs(5);
        while source.facts()["source.complete"] != "1" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let f = source.facts();
        assert_eq!(f["source.bytes"], SOURCE_BYTES.to_string());
        assert_eq!(f["source.connections"], "1");
    }
}
