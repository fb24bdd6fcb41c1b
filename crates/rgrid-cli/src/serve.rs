//! `rgrid serve`: a real node that runs until SIGINT or SIGTERM.

use std::io::Write;

use clap::Args;

use crate::conformance;
use crate::node::{Failure, NodeArgs};

/// Flags of `rgrid serve`.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Register the conformance handlers (single 78 echo, 79 error; stream 78 `echo` and
    /// `count`, stream 79 `error`).
    #[arg(long)]
    conformance: bool,
    /// Serve Prometheus metrics (calls, outcomes, latency, in flight, reconnects) over HTTP
    /// on this address, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

/// Runs the node until a shutdown signal, then shuts it down cleanly.
pub(crate) async fn run(args: ServeArgs) -> Result<(), Failure> {
    let conformance = args.conformance;
    let auth = args.node.auth.resolve()?;
    if let Some(addr) = args.metrics {
        // Before the node starts, so that every call is counted.
        crate::metrics::serve(addr).await?;
        tracing::info!(%addr, "serving Prometheus metrics");
    }
    let manager = args
        .node
        .start(&auth, |m| {
            if conformance {
                conformance::register(m)?;
            }
            Ok(())
        })
        .await?;
    // Watched before the ready line: a SIGHUP sent as soon as the node is ready must reload
    // the host list, not hit the default action (which ends the process).
    #[cfg(unix)]
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    #[cfg(not(unix))]
    let hup = ();
    {
        let mut out = std::io::stdout().lock();
        let ready = writeln!(out, "ready {}", manager.host()).and_then(|()| out.flush());
        if let Err(e) = ready {
            manager.shutdown().await;
            return Err(Failure::Local(format!("stdout: {e}")));
        }
    }
    tracing::info!(
        local = manager.host(),
        remotes = manager.remotes().count(),
        auth = auth.kind(),
        conformance,
        "serving"
    );
    let signal = tokio::select! {
        s = crate::shutdown_signal() => s,
        () = reload_hosts_on_sighup(hup, &args.node, &manager) => "SIGHUP watch ended",
    };
    tracing::info!(signal, "shutting down");
    manager.shutdown().await;
    Ok(())
}

/// On every SIGHUP, re-reads the host list (`--hosts` and `--hosts-file`) and adds and
/// removes hosts on the running node. Never returns where SIGHUP can be watched.
#[cfg(unix)]
async fn reload_hosts_on_sighup(
    hup: std::io::Result<tokio::signal::unix::Signal>,
    node: &NodeArgs,
    manager: &rgrid::Manager,
) {
    {
        let Ok(mut hup) = hup else {
            tracing::warn!("cannot watch SIGHUP: the host list is fixed");
            return std::future::pending().await;
        };
        while hup.recv().await.is_some() {
            match node.hosts_now() {
                Ok(hosts) => apply_hosts(manager, &hosts),
                Err(e) => tracing::warn!(error = %e, "SIGHUP: host list not reloaded"),
            }
        }
    }
    std::future::pending().await
}

#[cfg(not(unix))]
async fn reload_hosts_on_sighup((): (), _: &NodeArgs, _: &rgrid::Manager) {
    std::future::pending().await
}

/// Makes the node's remotes the hosts of `hosts` (the local one aside).
fn apply_hosts(manager: &rgrid::Manager, hosts: &[String]) {
    let wanted: Vec<String> = hosts
        .iter()
        .filter_map(|h| rgrid::transport::normalize_host(h).ok())
        .filter(|h| h != manager.host())
        .collect();
    let (mut added, mut removed) = (0, 0);
    // The hosts of the grid only: a host connected as a client participant is added too.
    let remotes: Vec<String> = manager.remotes().collect();
    for h in &wanted {
        if !remotes.contains(h) {
            match manager.add_host(h) {
                Ok(_) => added += 1,
                Err(e) => tracing::warn!(host = %h, error = %e, "SIGHUP: host not added"),
            }
        }
    }
    for h in manager.remotes() {
        if !wanted.contains(&h) && manager.remove_host(&h).is_ok() {
            removed += 1;
        }
    }
    tracing::info!(
        added,
        removed,
        remotes = manager.remotes().count(),
        "host list reloaded"
    );
}
