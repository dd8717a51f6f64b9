//! The accept loop: plain or TLS HTTP/1.1 connections, and the server-wide pause of the
//! control API (refusing connections by closing the port, or hanging requests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::control::{Control, PauseMode};

/// Listens on the port again after a pause that closed it (same address, so clients
/// reconnect to the same kubeconfig).
fn rebind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut kill: tokio::sync::watch::Receiver<u64>,
) {
    // Watch events are small writes: without this, Nagle's algorithm holds them back.
    let _ = tcp.set_nodelay(true);
    tokio::spawn(async move {
        let service = hyper_util::service::TowerToHyperService::new(app);
        let conn = async move {
            let result = match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => {
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        };
        tokio::select! {
            _ = conn => {}
            // A pause that refuses connections drops this one too.
            _ = kill.changed() => {}
        }
    });
}

/// Serves `app` on `listener` until the task is dropped, honouring pauses.
pub(crate) async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    app: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    control: Arc<Control>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let (kill, _) = tokio::sync::watch::channel(0u64);
    let mut pause = control.pause_watch();
    let mut listener = Some(listener);
    loop {
        let refuse = matches!(*pause.borrow_and_update(), Some(PauseMode::Refuse));
        if refuse {
            if listener.take().is_some() {
                tracing::info!(%addr, "port closed: connections are refused until resumed");
                kill.send_modify(|v| *v += 1);
            }
            if pause.changed().await.is_err() {
                return;
            }
            continue;
        }
        let Some(l) = listener.as_ref() else {
            match rebind(addr) {
                Ok(l) => {
                    tracing::info!(%addr, "port open again");
                    listener = Some(l);
                }
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "cannot listen again yet; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        tokio::select! {
            r = l.accept() => match r {
                Ok((tcp, peer)) => serve_connection(tcp, peer, app.clone(), acceptor.clone(), kill.subscribe()),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            r = pause.changed() => if r.is_err() { return },
        }
    }
}
