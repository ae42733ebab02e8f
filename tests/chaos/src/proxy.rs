//! A fault-injecting TCP proxy: workers dial it instead of the gateway, and
//! each accepted connection is forwarded to the upstream address by two pump
//! threads (one per direction). Faults, each on command:
//!
//! - [`Proxy::kill`]: close both sides of a connection (the worker sees the
//!   TCP connection end without a WebSocket close frame);
//! - [`Proxy::stall`]: a half-open connection: bytes in both directions are
//!   swallowed and nothing is closed, not even when the gateway gives up on
//!   its side; only the worker's own liveness check can notice;
//! - [`Proxy::set_delay`]: every chunk, both ways, waits this long first;
//! - [`Proxy::truncate`]: the next chunk on a connection is cut in half and
//!   the connection closed (a frame that ends mid-way).
//!
//! The proxy keeps a record of every connection (accepted, stalled, closed by
//! the worker) so that detection times can be read afterwards.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A running proxy. Dropping it stops accepting (live connections are killed).
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    upstream: SocketAddr,
    links: Mutex<Vec<Arc<Link>>>,
    delay_ms: AtomicU64,
    stopped: AtomicBool,
}

/// One proxied connection.
#[derive(Debug)]
struct Link {
    id: u64,
    /// Client and upstream sockets; dropped (closed) when both pumps have stopped.
    sockets: Mutex<Option<(TcpStream, TcpStream)>>,
    pumps: std::sync::atomic::AtomicU32,
    accepted: Instant,
    stalled: AtomicBool,
    truncate: AtomicBool,
    times: Mutex<LinkTimes>,
}

/// What happened to one connection, and when.
#[derive(Clone, Debug)]
pub struct LinkTimes {
    pub id: u64,
    pub accepted: Instant,
    pub stalled: Option<Instant>,
    /// The worker closed (or reset) its side.
    pub client_closed: Option<Instant>,
    /// The worker-to-gateway pump stopped: the worker's side is gone.
    pub ended: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Proxy {
    /// Listen on an ephemeral loopback port, forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            upstream,
            links: Mutex::new(Vec::new()),
            delay_ms: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        });
        let accept = inner.clone();
        std::thread::Builder::new().name("chaos-proxy".into()).spawn(move || accept.accept_loop(listener))?;
        Ok(Proxy { addr, inner })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/v0/connect`: what a worker dials instead of the gateway.
    pub fn gateway_url(&self) -> String {
        format!("ws://{}/v0/connect", self.addr)
    }

    /// Connections accepted so far (every dial of every worker behind this proxy).
    pub fn accepted(&self) -> usize {
        lock(&self.inner.links).len()
    }

    /// The record of every connection, oldest first.
    pub fn history(&self) -> Vec<LinkTimes> {
        lock(&self.inner.links).iter().map(|l| lock(&l.times).clone()).collect()
    }

    /// Ids of connections still forwarding (not ended, not stalled), opened at least `min_age` ago.
    pub fn live(&self, min_age: Duration) -> Vec<u64> {
        let now = Instant::now();
        lock(&self.inner.links)
            .iter()
            .filter(|l| !l.stalled.load(Ordering::SeqCst) && lock(&l.times).ended.is_none())
            .filter(|l| now.duration_since(l.accepted) >= min_age)
            .map(|l| l.id)
            .collect()
    }

    /// Close both sides of connection `id`.
    pub fn kill(&self, id: u64) {
        if let Some(l) = self.inner.link(id) {
            l.close_both();
        }
    }

    /// Close every connection.
    pub fn kill_all(&self) {
        for l in lock(&self.inner.links).iter() {
            l.close_both();
        }
    }

    /// Make connection `id` half-open: swallow everything, close nothing.
    pub fn stall(&self, id: u64) {
        if let Some(l) = self.inner.link(id) {
            lock(&l.times).stalled.get_or_insert(Instant::now());
            l.stalled.store(true, Ordering::SeqCst);
        }
    }

    /// Cut the next chunk on connection `id` in half, then close it.
    pub fn truncate(&self, id: u64) {
        if let Some(l) = self.inner.link(id) {
            l.truncate.store(true, Ordering::SeqCst);
        }
    }

    /// Delay every chunk on every connection by `d` (zero: none).
    pub fn set_delay(&self, d: Duration) {
        self.inner.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        self.kill_all();
    }
}

impl Inner {
    fn link(&self, id: u64) -> Option<Arc<Link>> {
        lock(&self.links).iter().find(|l| l.id == id).cloned()
    }

    fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        for client in listener.incoming() {
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            let Ok(client) = client else { continue };
            let Ok(upstream) = TcpStream::connect(self.upstream) else { continue };
            let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
            let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else { continue };
            let now = Instant::now();
            let mut links = lock(&self.links);
            let id = links.len() as u64;
            let link = Arc::new(Link {
                id,
                sockets: Mutex::new(Some((client, upstream))),
                pumps: std::sync::atomic::AtomicU32::new(2),
                accepted: now,
                stalled: AtomicBool::new(false),
                truncate: AtomicBool::new(false),
                times: Mutex::new(LinkTimes {
                    id,
                    accepted: now,
                    stalled: None,
                    client_closed: None,
                    ended: None,
                }),
            });
            links.push(link.clone());
            drop(links);
            let (a, b) = (self.clone(), self.clone());
            let (la, lb) = (link.clone(), link);
            let up = std::thread::Builder::new()
                .name("chaos-pump-up".into())
                .spawn(move || a.pump(&la, c2, Dir::Up));
            let down = std::thread::Builder::new()
                .name("chaos-pump-down".into())
                .spawn(move || b.pump(&lb, u2, Dir::Down));
            if up.is_err() || down.is_err() {
                eprintln!("chaos proxy: could not spawn a pump thread");
            }
        }
    }

    /// Copy from `src` to the other side of `link` until either side ends.
    fn pump(&self, link: &Link, mut src: TcpStream, dir: Dir) {
        let dst = {
            let sockets = lock(&link.sockets);
            let Some((client, upstream)) = sockets.as_ref() else { return };
            match dir {
                Dir::Up => upstream.try_clone(),
                Dir::Down => client.try_clone(),
            }
        };
        if let Ok(dst) = dst {
            self.copy(link, &mut src, dst, dir);
        }
        if dir == Dir::Up {
            lock(&link.times).ended.get_or_insert(Instant::now());
        }
        if link.pumps.fetch_sub(1, Ordering::SeqCst) == 1 {
            lock(&link.sockets).take(); // both pumps done: close the sockets for good
        }
    }

    fn copy(&self, link: &Link, src: &mut TcpStream, mut dst: TcpStream, dir: Dir) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            };
            let stalled = link.stalled.load(Ordering::SeqCst);
            if n == 0 {
                if dir == Dir::Up {
                    lock(&link.times).client_closed.get_or_insert(Instant::now());
                }
                // A half-open link stays open towards the worker even when the gateway gives up.
                if !(stalled && dir == Dir::Down) {
                    link.close_both();
                }
                break;
            }
            if stalled {
                continue; // swallowed
            }
            let delay = self.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                std::thread::sleep(Duration::from_millis(delay));
            }
            if link.truncate.swap(false, Ordering::SeqCst) {
                let _ = dst.write_all(&buf[..n.div_ceil(2)]);
                link.close_both();
                break;
            }
            if dst.write_all(&buf[..n]).is_err() {
                link.close_both();
                break;
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    /// Worker to gateway.
    Up,
    /// Gateway to worker.
    Down,
}

impl Link {
    fn close_both(&self) {
        if let Some((client, upstream)) = lock(&self.sockets).as_ref() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }
}
