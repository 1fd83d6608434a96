//! A TCP load balancer in front of several units, as a Kubernetes Service
//! stands in front of pods: each new connection goes to the next address in
//! turn, and bytes pass through untouched.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// A running round-robin balancer on a loopback port; stops when dropped.
pub struct RoundRobin {
    /// Where clients connect.
    pub address: SocketAddr,
    routes: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
}

impl RoundRobin {
    /// Listens on a free port of 127.0.0.1 and forwards to `backends` in turn.
    pub fn start(backends: Vec<SocketAddr>) -> io::Result<RoundRobin> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let routes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (routes.clone(), stop.clone());
        thread::spawn(move || {
            for (n, client) in listener.incoming().enumerate() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let backend = backends[n % backends.len()];
                r.lock().unwrap().push(backend);
                if let Ok(server) = TcpStream::connect(backend) {
                    pipe(client, server);
                }
            }
        });
        Ok(RoundRobin {
            address,
            routes,
            stop,
        })
    }

    /// The backend each connection went to, in order.
    pub fn routes(&self) -> Vec<SocketAddr> {
        self.routes.lock().unwrap().clone()
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.address);
    }
}

/// Copies both ways until each side closes.
fn pipe(client: TcpStream, server: TcpStream) {
    for (mut from, mut to) in [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ]
    .into_iter()
    .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
    {
        thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
}
