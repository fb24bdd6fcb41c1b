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
    let signal = crate::shutdown_signal().await;
    tracing::info!(signal, "shutting down");
    manager.shutdown().await;
    Ok(())
}
