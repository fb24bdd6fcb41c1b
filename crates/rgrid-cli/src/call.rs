//! `rgrid call`: join the grid as a node, make one call or open one stream, print the answer.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use futures_util::StreamExt;
use rgrid::{
    CallOptions, CallStream, ConnFailure, Connection, HandlerId, RawStreamHandler, RemoteError,
    State,
};

use crate::conformance;
use crate::node::{Failure, NodeArgs};

/// Flags of `rgrid call`.
#[derive(Args, Debug)]
pub(crate) struct CallArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The node to call (one of --hosts).
    #[arg(long, value_name = "URL")]
    to: String,
    /// Handler id (1..=79).
    #[arg(long, value_name = "N")]
    handler: u8,
    /// Static subroute of the handler.
    #[arg(long, value_name = "S")]
    subroute: Option<String>,
    /// Open a stream instead of making a single request.
    #[arg(long)]
    stream: bool,
    /// The request (or the stream's initial) payload: text, or @file for a file's bytes.
    #[arg(long, value_name = "TEXT|@file", default_value = "")]
    payload: String,
    /// A message to send on the stream (repeatable, sent in order, then the input closes).
    #[arg(long = "send", value_name = "TEXT")]
    send: Vec<String>,
    /// Seconds to wait for the connection, and the call's deadline.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    timeout: f64,
}

/// Makes the call; prints every response on its own line on stdout.
pub(crate) async fn run(args: CallArgs) -> Result<(), Failure> {
    let auth = args.node.auth.resolve()?;
    let handler = HandlerId(args.handler);
    if !handler.is_valid() {
        return Err(Failure::Local(format!(
            "--handler {}: valid handler ids are 1..=79",
            args.handler
        )));
    }
    if !args.send.is_empty() && !args.stream {
        return Err(Failure::Local("--send needs --stream".into()));
    }
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| Failure::Local("--timeout needs a positive number of seconds".into()))?;
    let payload = match args.payload.strip_prefix('@') {
        Some(path) => Bytes::from(
            tokio::fs::read(path)
                .await
                .map_err(|e| Failure::Local(format!("--payload @{path}: {e}")))?,
        ),
        None => Bytes::from(args.payload.clone()),
    };
    let takes_no_input = conformance::stream(handler, args.subroute.as_deref())
        .is_some_and(|h| h.in_capacity() == 0);
    if args.stream && takes_no_input && !args.send.is_empty() {
        return Err(Failure::Local(format!(
            "handler {} subroute {} takes no input; drop --send",
            args.handler,
            args.subroute.as_deref().unwrap_or_default()
        )));
    }
    if args.node.local.as_ref() == Some(&args.to) || !args.node.hosts_now()?.contains(&args.to) {
        return Err(Failure::Local(format!(
            "--to {} must be one of --hosts and not --local",
            args.to
        )));
    }

    let register = |m: &rgrid::Manager| register_caller_side(m, &args, handler);
    let manager = if args.node.local.is_some() {
        args.node.start(&auth, register).await?
    } else {
        // No --local: a client participant, unknown to the servers' host lists.
        let name = format!(
            "client://rgrid-call-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        );
        args.node.start_client(&name, &auth, register)?
    };
    let result = call(&manager, &args, handler, payload, timeout).await;
    manager.shutdown().await;
    result
}

/// A stream's caller sizes its windows from its own registration of the handler: the
/// conformance set is registered, and any other stream gets a stand-in with input capacity 1
/// when there is something to send (0 otherwise) and output capacity 1.
fn register_caller_side(
    m: &rgrid::Manager,
    args: &CallArgs,
    handler: HandlerId,
) -> Result<(), rgrid::Error> {
    conformance::register(m)?;
    if args.stream && conformance::stream(handler, args.subroute.as_deref()).is_none() {
        let in_capacity = usize::from(!args.send.is_empty());
        m.register_stream(
            handler,
            args.subroute.as_deref(),
            RawStreamHandler::new(in_capacity, 1, |_, _, _, _| async {
                Err(RemoteError::new("this node only makes calls"))
            }),
        )?;
    }
    Ok(())
}

async fn call(
    manager: &rgrid::Manager,
    args: &CallArgs,
    handler: HandlerId,
    payload: Bytes,
    timeout: Duration,
) -> Result<(), Failure> {
    let conn = manager
        .connection(&args.to)
        .ok_or_else(|| Failure::Local(format!("{} is not a remote of this node", args.to)))?;
    wait_connected(&conn, timeout).await?;
    let mut options = CallOptions::new().deadline(timeout);
    if let Some(s) = args.subroute.as_deref() {
        options = options.subroute(s);
    }
    let mut out = std::io::stdout().lock();
    if !args.stream {
        let response = conn.request_with(handler, payload, &options).await?;
        return print_line(&mut out, &response);
    }
    let stream = conn.open_stream_with(handler, payload, &options).await?;
    drop(out);
    run_stream(stream, &args.send).await
}

/// How often a call waiting for its connection looks for a refusal.
const REFUSAL_CHECK: Duration = Duration::from_millis(20);

/// Waits for the connection, up to `timeout`; a refusal by the peer (a wrong secret, a host
/// name it does not know) ends the wait at once, as retrying would get the same answer.
async fn wait_connected(conn: &Connection, timeout: Duration) -> Result<(), Failure> {
    let refused = async {
        let mut tick = tokio::time::interval(REFUSAL_CHECK);
        loop {
            tick.tick().await;
            if let Some(f) = conn.last_error()
                && !f.refused_here
                && matches!(f.error, rgrid::Error::Rejected(_))
            {
                return f;
            }
        }
    };
    let outcome = tokio::time::timeout(timeout, async {
        tokio::select! {
            res = conn.wait_for_connect() => res.map_err(Failure::from),
            f = refused => Err(Failure::Local(not_connected(
                conn.remote(),
                None,
                conn.state(),
                Some(&f),
            ))),
        }
    })
    .await;
    match outcome {
        Ok(res) => res,
        Err(_) => Err(Failure::Local(not_connected(
            conn.remote(),
            Some(timeout),
            conn.state(),
            conn.last_error().as_ref(),
        ))),
    }
}

/// The error line of a call that got no connection: the state and, once an attempt failed,
/// why (as [`rgrid::PeersDown`] says it): the peer's refusal with its reason (`connection
/// rejected: auth token: ...`), this node's refusal of the peer (`refused here: ...`), or the
/// dial error.
fn not_connected(
    remote: &str,
    timeout: Option<Duration>,
    state: State,
    last_error: Option<&ConnFailure>,
) -> String {
    let mut line = match timeout {
        Some(t) => format!(
            "no connection to {remote} within {:.1} s (state {state})",
            t.as_secs_f64()
        ),
        None => format!("no connection to {remote} (state {state})"),
    };
    match last_error {
        Some(f) if f.refused_here => line.push_str(&format!(": refused here: {}", f.error)),
        Some(f) => line.push_str(&format!(": {}", f.error)),
        None => {}
    }
    line
}

/// Sends `send` (then closes the input) while printing the responses as they come; the
/// stream's own error wins over a send failure it caused.
async fn run_stream(stream: CallStream, send: &[String]) -> Result<(), Failure> {
    let (sender, mut responses) = stream.split();
    let messages: Vec<Bytes> = send.iter().map(|s| Bytes::from(s.clone())).collect();
    let sending = async move {
        match sender {
            Some(mut sender) => {
                for m in messages {
                    sender.send(m).await?;
                }
                sender.close();
                Ok(())
            }
            None if messages.is_empty() => Ok(()),
            None => Err(rgrid::Error::Usage(
                "this stream takes no input, but --send was given".into(),
            )),
        }
    };
    let receiving = async {
        while let Some(item) = responses.next().await {
            let msg = item?;
            print_line(&mut std::io::stdout().lock(), &msg)?;
        }
        Ok::<(), Failure>(())
    };
    let (sent, received) = tokio::join!(sending, receiving);
    received?;
    sent.map_err(Failure::from)
}

fn print_line(out: &mut impl Write, msg: &[u8]) -> Result<(), Failure> {
    out.write_all(msg)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Local(format!("stdout: {e}")))
}
