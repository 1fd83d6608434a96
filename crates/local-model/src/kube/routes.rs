//! What kube-proxy does: a listener on each address and port a Service is
//! reached at (its cluster IP, the node's port, the load balancer's
//! address), each connection handed to one of the pods the Service selects
//! at that moment, in turn, skipping pods that refuse it.

use super::objects::Route;
use super::Shared;
use std::collections::BTreeMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long connecting to a pod may take before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One listener, and how to stop it.
struct Listening {
    route: Route,
    stopping: Arc<AtomicBool>,
    accepting: JoinHandle<()>,
}

impl Listening {
    /// Stops the listener and, once it has woken, waits for its socket to
    /// close, so that the address refuses connections when this returns.
    fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept so that the listener sees it is stopping.
        let woken = TcpStream::connect_timeout(
            &SocketAddr::new(
                self.route.address.parse().expect("a listened address"),
                self.route.port,
            ),
            Duration::from_millis(200),
        );
        if woken.is_ok() {
            let _ = self.accepting.join();
        }
    }
}

/// The listeners, one per `(address, port)`.
#[derive(Default)]
pub struct Router {
    listening: BTreeMap<(String, u16), Listening>,
}

impl Router {
    /// Listens where `routes` say and nowhere else; a route whose address
    /// cannot be listened on is reported and left out.
    pub fn reconcile(&mut self, routes: Vec<Route>, shared: &Arc<Mutex<Shared>>) {
        let wanted: BTreeMap<(String, u16), Route> = routes
            .into_iter()
            .map(|r| ((r.address.clone(), r.port), r))
            .collect();
        let gone: Vec<(String, u16)> = self
            .listening
            .iter()
            .filter(|(at, l)| wanted.get(*at) != Some(&l.route))
            .map(|(at, _)| at.clone())
            .collect();
        for at in gone {
            if let Some(l) = self.listening.remove(&at) {
                l.stop();
            }
        }
        for (at, route) in wanted {
            if self.listening.contains_key(&at) {
                continue;
            }
            match listen(&route, shared.clone()) {
                Ok((stopping, accepting)) => {
                    self.listening.insert(
                        at,
                        Listening {
                            route,
                            stopping,
                            accepting,
                        },
                    );
                }
                Err(e) => eprintln!(
                    "cannot route Service {} at {}:{}: {e}",
                    route.service, route.address, route.port
                ),
            }
        }
    }

    /// Stops every listener.
    pub fn stop(&mut self) {
        for (_, l) in std::mem::take(&mut self.listening) {
            l.stop();
        }
    }
}

/// Listens for `route`: the flag that stops it and the thread accepting.
fn listen(
    route: &Route,
    shared: Arc<Mutex<Shared>>,
) -> io::Result<(Arc<AtomicBool>, JoinHandle<()>)> {
    let address: std::net::IpAddr = route
        .address
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not an IP address"))?;
    let listener = TcpListener::bind(SocketAddr::new(address, route.port))?;
    let stopping = Arc::new(AtomicBool::new(false));
    let flag = stopping.clone();
    let route = route.clone();
    let accepting = std::thread::spawn(move || {
        let turn = AtomicUsize::new(0);
        for client in listener.incoming() {
            if flag.load(Ordering::SeqCst) {
                break;
            }
            let Ok(client) = client else { continue };
            let backends = {
                let shared = shared.lock().expect("the cluster");
                shared.objects.backends(&shared.cluster, &route.service)
            };
            let first = turn.fetch_add(1, Ordering::Relaxed);
            let target = route.target;
            std::thread::spawn(move || forward(client, &backends, first, target));
        }
    });
    Ok((stopping, accepting))
}

/// Connects `client` to the first of `backends` (from `first`, in turn)
/// that answers, and copies both ways until each side closes; a client no
/// pod answers is closed.
fn forward(client: TcpStream, backends: &[String], first: usize, port: u16) {
    let n = backends.len();
    let pod = (0..n).find_map(|i| {
        let address: std::net::IpAddr = backends[(first + i) % n].parse().ok()?;
        TcpStream::connect_timeout(&SocketAddr::new(address, port), CONNECT_TIMEOUT).ok()
    });
    let Some(pod) = pod else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = pod.set_nodelay(true);
    let (Ok(client_read), Ok(pod_write)) = (client.try_clone(), pod.try_clone()) else {
        return;
    };
    let upstream = std::thread::spawn(move || copy(client_read, pod_write));
    copy(pod, client);
    let _ = upstream.join();
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
