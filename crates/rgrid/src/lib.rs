//! rgrid: fast two-way RPC between the servers of a cluster over one persistent websocket per
//! pair of servers, byte-compatible with MinIO's internode grid (protocol v1).
//!
//! # Examples
//!
//! The crate's `examples/` folder holds small programs, each a tutorial that runs by itself
//! on loopback and checks what it shows (`cargo run -p rgrid --example hello`);
//! `tests/examples.rs` runs them in CI. In reading order:
//!
//! * `hello.rs`: two nodes, one call with raw bytes.
//! * `typed_service.rs`: your own [`typed::Service`] with typed methods; a remote error, an
//!   unknown method, a fan-out to every node.
//! * `streams.rs`: a server stream, a two-way stream, how a stream ends, cancellation.
//! * `axum_mount.rs`: the grid mounted on an existing axum router ([`Manager::service`]).
//! * `tls_jwt.rs` (feature `tls`): TLS and JWT authentication, and why a node with a wrong
//!   secret is refused ([`Connection::last_error`]).
//! * `lock_grid.rs`: MinIO's separate lock grid ([`LOCK_ROUTE_PATH`]) next to the main grid.
//! * `custom_transport.rs`: your own transport ([`ConnDialer`], [`serve_connection`]).
//! * `testing.rs` (feature `test-util`): testing handlers against a local grid, with a
//!   killed connection.
//! * `quorum_lock.rs`: a dsync-style lock service with a quorum, one process per node
//!   (`tests/example_quorum_lock.rs` runs three).
//!
//! The README's "Layout" section says where everything else lives.
//!
//! # Example: your own service on two nodes, a typed call and a typed stream
//!
//! An app declares its calls by name: a [`typed::Service`] and its methods, each one static
//! that gives both the handler registration and the typed call (serde types as
//! MessagePack). On the wire a method is the grid's handler 128 ([`HandlerId::SERVICE`])
//! under the subroute `service/method`, so the protocol stays MinIO's grid v1; MinIO's own
//! handler ids (1..=79, with [`typed::SingleHandler`] and [`typed::StreamHandler`]) are for
//! talking to MinIO's handlers. Each node builds a [`Manager`] with the full host list,
//! registers its handlers, serves the grid route and starts; calls go through the
//! [`Connection`] to a host.
//!
//! ```
//! use futures_util::StreamExt;
//! use rgrid::typed::{Service, ServiceMethod, ServiceStream};
//! use rgrid::{Manager, RemoteError, serve};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Lookup {
//!     key: String,
//! }
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Found {
//!     value: Option<String>,
//! }
//!
//! // The service "kv" and its methods; the types are part of the contract.
//! const KV: Service = Service::new("kv");
//! // kv/lookup answers from memory without blocking, so it may run inline on the reader.
//! static LOOKUP: ServiceMethod<Lookup, Found> = KV.method("lookup").inline();
//! // kv/prefix: payload a prefix; requests: words; responses: the prefixed words.
//! static PREFIX: ServiceStream<String, String, String> = KV.stream("prefix");
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rgrid::Error> {
//! let (a, b) = (
//!     tokio::net::TcpListener::bind("127.0.0.1:0").await?,
//!     tokio::net::TcpListener::bind("127.0.0.1:0").await?,
//! );
//! let hosts = [
//!     format!("http://{}", a.local_addr()?),
//!     format!("http://{}", b.local_addr()?),
//! ];
//! let mut nodes = Vec::new();
//! for (host, listener) in hosts.iter().zip([a, b]) {
//!     let node = Manager::builder(host.clone(), hosts.clone())
//!         .jwt_secret("cluster secret")
//!         .build()?;
//!     LOOKUP.register(&node, |req: Lookup| async move {
//!         let value = (req.key == "answer").then(|| "42".to_owned());
//!         Ok::<_, RemoteError>(Found { value })
//!     })?;
//!     PREFIX.register(&node, |_ctx, prefix, mut words, out| async move {
//!         while let Some(word) = words.recv().await {
//!             out.send(&format!("{prefix}{}", word?)).await?;
//!         }
//!         Ok(())
//!     })?;
//!     tokio::spawn(serve(listener, node.clone()));
//!     node.start();
//!     nodes.push(node);
//! }
//!
//! let to_b = nodes[0].connection(&hosts[1]).expect("b is in the grid");
//! to_b.wait_for_connect().await?;
//!
//! let found = LOOKUP.call(&to_b, &Lookup { key: "answer".into() }).await?;
//! assert_eq!(found, Found { value: Some("42".into()) });
//!
//! let mut stream = PREFIX.call(&to_b, &"re".to_owned()).await?;
//! for word in ["do", "play"] {
//!     stream.send(&word.to_owned()).await?;
//! }
//! stream.close_send();
//! let mut got = Vec::new();
//! while let Some(word) = stream.next().await {
//!     got.push(word?);
//! }
//! assert_eq!(got, ["redo", "replay"]);
//!
//! for node in &nodes {
//!     node.shutdown().await;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Architecture
//!
//! * [`rgrid_proto`] (re-exported as [`proto`]) is the I/O-free wire format: message tuple,
//!   merged frames, handshake maps, subroute ids, the who-dials rule.
//! * A [`Manager`] per node knows every host of the grid (itself included) and owns one
//!   [`Connection`] per remote. Which side dials is fixed by a hash of the two host names, so
//!   exactly one websocket exists per pair; the dialing side redials with jittered backoff
//!   (1–2 s after the previous attempt started) and at once after an established connection
//!   ends.
//! * Each live websocket has one **connection core** ([`proto::conn::Core`]): a sans-IO state
//!   machine that owns every mux of the connection in both directions (each mux's lifecycle
//!   is one enum), the sequence numbers and credits, the pings, the watchdog and the stream
//!   deadlines. What a mux owes the peer (an ack, credits, a pong, an EOF, a cancel, the final
//!   disconnect) is state on the mux, turned into messages when the writer next transmits,
//!   so no burst of legitimate traffic can overflow a queue and close the connection (16,384
//!   idle streams all pinged at once are answered in full).
//! * **Ownership and locking: one writer at a time; the core owns the state.** The core sits
//!   behind one short-held mutex; nobody holds it across an `.await` or a socket write.
//!   Whoever changes the core (a caller starting a request, the reader handling a frame, the
//!   timer task) wakes whoever the core says and, if there is output and nobody is writing,
//!   takes the *writer role* and writes the frame itself, without waiting on the socket. The
//!   holder of the role drains what others queued meanwhile, so frames still merge under load
//!   (up to 50 messages / 31 KiB per `OpMerged` frame; a larger message is never merged
//!   behind smaller ones, which the peer can then handle before it has read the large one). A
//!   writer task takes the role over only when the socket is full (or after four frames), and
//!   waits for it, bounded by
//!   [`Options::write_timeout`]; it also writes a stream message sent with credits to spare
//!   (a window above one), after the sender yields, so a burst of messages leaves in one
//!   frame instead of a write each, while a message that takes a stream's last credit (such
//!   as MinIO's windows of one) leaves before its `send` returns. A sender that does not
//!   yield holds its messages back for at most 16 messages, or until it sends again 100 µs
//!   later; messages of 15.5 KiB or more are written at once. A reader task reads frames and feeds them to the core;
//!   every single handler runs in a task of its own, so one that blocks delays nobody else,
//!   except handlers that opt in to running inline ([`Manager::register_single_inline`],
//!   [`typed::SingleHandler::inline`]): those get their first poll on the reader and their
//!   answer goes out in the same write. A timer task runs the core's timers. So a call to an
//!   inline handler crosses one task hand-off (the reader waking the caller) instead of
//!   three. The reader wakes answered callers one at a time, each waking the next, so a
//!   frame of several answers does not wake an idle worker thread. A caller that does not
//!   poll its answered call (its task busy elsewhere, the future kept) holds up the answers
//!   behind it only until the connection's next frame: when the reader comes back from
//!   waiting for the socket, it wakes everyone still waiting.
//! * **A quiet connection wakes nobody.** On tokio's multi-thread runtime, any moment with
//!   two runnable tasks on one worker wakes a sleeping worker thread, and that one then wakes
//!   the first when it finds work: a futex call and a context switch each time, tens of
//!   microseconds on a small machine, more than a stream's whole work. So while a
//!   connection has at most four calls and streams live (both directions), nothing yields
//!   to wait for more output: the writer task yields only while there is more to write, a
//!   frame with several messages does not mark the connection as loaded, a stream's open
//!   with input leaves with the input sent before the caller yields, and a served stream's
//!   ack waits for the end of its handler's first poll, so it leaves in one frame with what
//!   the handler sent meanwhile (bounded like any deferral: 16 messages or 100 µs). A
//!   stream of 10 messages then costs two writes and no thread wake-up, where it cost two
//!   writes and two to three wake-ups. Busier connections keep the yields that merge many
//!   callers' messages into one frame. On those, the writer task lingers after it drained
//!   the output: it stays runnable for three rounds of the scheduler (eight from six live
//!   calls and streams; each round polls the I/O driver without blocking) and writes what
//!   came meanwhile, so that in an exchange where
//!   every message waits for an answer (streams with MinIO's windows of one) a worker thread
//!   does not park and get woken between two messages. Not while a bulk-class call or
//!   stream is live, nor after a large frame: the CPU goes to the transfer then.
//! * **Scheduling.** The writer sends control first, then data by [`Priority`]: single
//!   requests and their answers ([`Priority::Latency`]) before streams
//!   ([`Priority::Normal`]) before bulk transfers ([`Priority::Bulk`], opt-in with
//!   [`RawStreamHandler::priority`] or [`CallOptions::priority`]), round-robin among the calls
//!   of a class, one message per turn; a lower class still gets one message after 32 of
//!   higher classes. A small call therefore waits for at most one message of each busier
//!   class; `TCP_NOTSENT_LOWAT` (32 KiB, Linux) keeps the kernel's unsent buffer short so
//!   the scheduler, not the socket, decides the order. Priority is local: the wire has no
//!   field for it, and Go peers are unaffected.
//! * **Bulk yields its window.** What a bulk stream already sent sits ahead of a small call
//!   in the socket buffers and the peer's reader, whatever the writer's order. So while
//!   latency-class calls are in flight on the connection (either way), a bulk stream keeps
//!   only one message of 16 KiB or more ahead of its consumer (a credit batch of smaller
//!   ones): each further message waits for the peer to consume the one before, as with a
//!   window of one. When the small calls stop, it has its whole window back after its next
//!   credit. Only data waits, never a stream's end or teardown, and what it waits for is a
//!   credit the consumer sends on reading, so it slows but never stalls. Measured with
//!   `rgrid-bench --only hol` (README): next to a window-4 bulk stream, small calls keep
//!   about half their idle throughput instead of a quarter.
//! * Each side pings the connection every second ([`Options::ping_interval`]); a peer
//!   heard nothing from (no pong, no data) for 2.5 s ([`Options::dead_after`]) is presumed
//!   dead: the connection is dropped, every call in flight on it fails with
//!   [`Error::Disconnected`], and the grid reconnects by itself. A partitioned, frozen or
//!   powered-off peer is found in under 3 s (MinIO's Go grid: 20 s), while a 1 s stall of a
//!   live peer is not a drop. A Go peer answers the pings as they come.
//!
//! # Observability
//!
//! * **Spans.** Every single request makes one `debug` span on each end, `grid.call` on the
//!   caller and `grid.serve` on the handler's node, with the remote host, the handler, the
//!   route (`service/method` for named methods) and the mux id, and one event inside it that
//!   says how the call ended (`call answered` / `call failed`, `handler answered` / `handler
//!   failed`). Streams likewise: `grid.stream` on the caller (events `stream opened`,
//!   `stream released`) and `grid.serve_stream` on the handler's node (`handler ended the
//!   stream`, `handler failed the stream`, `stream cancelled`). Disabled spans cost a
//!   static check: `RUST_LOG=rgrid=debug` turns them on.
//! * **Metrics** (feature `metrics`), through the `metrics` facade, so any exporter works
//!   (`rgrid serve --metrics ADDR` serves them as Prometheus text). Labels: `side` = `call`
//!   (the caller's end) or `serve` (the handler's), `route` = `service/method` (the
//!   subroute) or the handler's name, `outcome` = `ok`, `remote` (the handler failed),
//!   `disconnected`, `deadline`, `cancelled` (a caller that gave up: cancelled, or its
//!   future or handle dropped before the end) or `error` (anything else), `direction` =
//!   `sent` or `received`.
//!   - Single requests: `rgrid_calls_total` (counter; `side`, `route`, `outcome`, counted
//!     when the call ends), `rgrid_call_seconds` (histogram; `side`, `route`) and
//!     `rgrid_calls_in_flight` (gauge; `side`, `route`).
//!   - Streams: `rgrid_streams_opened_total` (counter; `side`, `route`),
//!     `rgrid_streams_total` (counter; `side`, `route`, `outcome`, counted when the stream
//!     ends: on the caller when its consumer reads the end, or when its handles are
//!     dropped), `rgrid_stream_seconds` (histogram; `side`, `route`: open to end),
//!     `rgrid_streams_in_flight` (gauge; `side`, `route`) and
//!     `rgrid_stream_messages_total` (counter; `side`, `route`, `direction`).
//!   - `rgrid_bytes_total` (counter; `side`, `route`, `direction`): payload bytes of single
//!     requests (the request and its answer) and of streams (the open's payload and every
//!     message); error texts and framing are not counted.
//!   - `rgrid_reconnects_total` (counter; `remote`).
//!
//!   Labels are bounded by the registered routes and the host list. Each route's series are
//!   registered once and cached, so recording allocates nothing; install the recorder
//!   before the node starts.
//! * **Connections.** [`Connection::stats`], [`Connection::last_error`] (why it is down),
//!   [`Connection::watch_state`], [`Connection::ping`], [`Manager::wait_for_peers`].
//!
//! # Single requests: deadlines and cancellation
//!
//! [`Connection::request`] sends one payload and waits for one answer: the handler's bytes,
//! [`Error::Remote`] with the handler's error text, or a local error. The deadline (default
//! 60 s, [`Options::default_deadline`]) travels with the request; the handler is dropped when
//! it passes (its answer could not be used) and the caller gets [`Error::DeadlineExceeded`].
//! A call made while the connection is down fails at once with [`Error::Disconnected`].
//! Dropping the call's future cancels it at once and frees its state; a response that
//! arrives later is discarded. A request that already left also tells the handler side
//! (`OpDisconnectServerMux`, which MinIO never sends for a single request and a Go peer
//! ignores): an rgrid handler's context is cancelled and its future dropped.
//!
//! # Streams: credits, cancellation, deadlines, liveness
//!
//! [`Manager::register_stream`] registers a [`RawStreamHandler`] with an input window
//! (`in_capacity`, 0 = no input) and an output window (`out_capacity`, at least 1);
//! [`Connection::open_stream`] opens a [`CallStream`]. Every message needs a credit: the caller
//! sends at most `in_capacity` messages the handler has not taken yet, the handler at most
//! `out_capacity` the consumer has not taken yet, so a slow side slows its peer down instead
//! of filling memory or blocking other calls on the connection. A peer that sends beyond its
//! credits fails that stream with a protocol error. Control messages of a stream (credits,
//! pings, cancels) overtake other calls' data but never the stream's own messages. Credits
//! of windows larger than two go back in batches of half the window, or sooner with any other
//! frame (see `rgrid_proto::conn`, "Credits"): a peer is never kept waiting for them, and a
//! two-way exchange carries them on its next message instead of frames of their own. On a
//! quiet connection the credit for a message just taken leaves when the taker yields (with
//! windows of one, one credit per message): what it sent meanwhile, such as an echo's answer,
//! shares the frame, and a message that took its last credit then waits for that yield too.
//! A taker that computes before it yields delays its peer's next message by as long. Input
//! does not wait for the handler side's ack: the first `in_capacity` messages may leave right
//! behind the open, so a stream with input costs one round trip less than MinIO's (whose
//! handler side buffers them the same way).
//!
//! Dropping the stream (or its [`Responses`] half), [`CallStream::cancel`], or the stream's
//! deadline cancels it on both sides; the handler's future is dropped. A lost connection
//! fails every stream on it with [`Error::Disconnected`] and cancels every handler. The
//! caller pings streams every 15 s ([`Options::stream_ping_interval`]) and fails one whose
//! handler side stayed silent for two intervals; the handler side cancels a stream not
//! pinged for four. Messages that arrived before a stream ended are always delivered before
//! its end.
//!
//! # Authentication
//!
//! A dialer sends a token twice, as MinIO does: in the upgrade request
//! (`Authorization: Bearer`, next to `X-Minio-Time`) and in the connect message. The
//! accepting side judges the connect message's token with its [`TokenValidator`] and refuses
//! the connection with `auth token: <reason>`, which the dialer sees as [`Error::Rejected`]
//! and logs; an optional HTTP-level check ([`ManagerBuilder::http_auth`]) can refuse the
//! upgrade itself with 403. Tokens come from a [`TokenSource`], which is told the host it
//! dials ([`TokenSource::token_for`]); validators are told this host and the host the peer
//! claims to be ([`TokenValidator::validate_peer`], [`PeerInfo`]). Closures implement both
//! traits. There is no default: [`ManagerBuilder::build`] fails until one is chosen.
//!
//! * [`ManagerBuilder::jwt_secret`] ([`GridJwt`]), recommended for grids of rgrid nodes:
//!   HS512 JWTs signed with the shared secret, naming the dialing host (`iss`) and the dialed
//!   host (`aud`), valid 5 minutes (plus 5 minutes of clock skew). The secret never travels;
//!   a captured token is refused by every other node and expires within minutes.
//! * [`ManagerBuilder::minio_jwt`] ([`MinioJwt`]), for grids shared with MinIO servers:
//!   MinIO's node token (HS512 JWT with the root access key, 100-year expiry), accepted as
//!   MinIO accepts it. [`MinioJwt::check_upgrade`] is MinIO's HTTP-level check.
//! * [`ManagerBuilder::token`] ([`StaticToken`]): one shared string, sent as is. For tests.
//!
//! Tokens longer than [`MAX_TOKEN_LEN`] are refused before decoding; JWTs must be `HS512`
//! (`none` and every other algorithm are refused) and their signature is checked in
//! constant time, as static tokens are compared. Neither tokens nor secrets are logged or
//! shown by `Debug`; refusal reasons never quote them.
//!
//! # Client participants
//!
//! A process that only calls (an admin tool, `rgrid call`) need not be a host of the grid:
//! [`Manager::client_builder`] makes a client that dials every server, listens nowhere, and
//! is authenticated like any peer. Servers accept up to [`Options::max_clients`] of them
//! (default 0: refused with MinIO's `unknown incoming host`, which is also what a MinIO node
//! answers, as it never accepts clients). A server never dials a client, finds it with
//! [`Manager::connection`] by its name or in [`Manager::clients`] (to call it back; fan-out
//! is over the hosts only), and forgets it when it leaves. The wire is grid v1.
//!
//! # Membership at run time
//!
//! [`Manager::add_host`] and [`Manager::remove_host`] change the grid of a running node:
//! a new host connects by the who-dials rule (once both sides list each other), and a
//! removed one is disconnected at once; calls in flight to it fail with
//! [`Error::Disconnected`], later calls on a kept handle with [`Error::UnknownHost`].
//! `rgrid serve --hosts-file F` re-reads `F` on SIGHUP and applies the difference.
//!
//! # Limits and defaults
//!
//! MinIO's grid has no message size limit, no concurrency limit and no handshake timeout;
//! rgrid bounds everything a peer can make a node hold. Every limit is a field of
//! [`Options`], and what happens past it is part of the contract:
//!
//! | Limit | Default | Past it |
//! |---|---|---|
//! | [`Options::max_message_size`] | 16 MiB | sending: [`Error::MessageTooLarge`] before anything is sent; a handler's answer: a remote error; received: the connection is closed (the peer broke the agreement) |
//! | frame size | max message + [`FRAME_SLACK`] | refused by the websocket layer before it is buffered; connection closed |
//! | [`MAX_HANDSHAKE_MESSAGE_SIZE`] | 64 KiB | until the handshake is done, bigger frames close the socket |
//! | [`Options::handshake_timeout`] | 10 s | TLS handshake plus upgrade request, then the connect message: slow or silent peers are dropped |
//! | [`Options::max_clients`] | 0 | client participants beyond it are refused (`too many clients`) |
//! | [`Options::max_preauth_conns`] | 64 | when full, the oldest unauthenticated connection from an address that is not a known host's makes room (an unknown newcomer never evicts a known host's; 503 on a mounted service when nothing can be evicted); established peers are unaffected |
//! | [`Options::max_preauth_per_addr`] | 8 | further sockets from that address (not a known host's) are closed at once |
//! | [`Options::max_incoming_muxes`] | 16384 | further requests and streams are refused with a mux connect error naming the limit; the connection lives |
//! | [`Options::out_queue`] / [`Options::out_queue_bytes`] | 65535 messages / 64 MiB | calls and stream messages wait for room (back-pressure) |
//! | [`Options::max_pending_replies`] | 4096 | a peer that sends requests but does not read the answers is disconnected |
//! | [`Options::max_pings_per_interval`] | 1024 | a ping flood closes the connection |
//! | [`Options::max_depth`] | 64 levels | a typed payload nested deeper fails to decode ([`Error::Decode`] or a remote error) |
//!
//! Other defaults: 4 s write timeout (a stuck write drops the connection), 1 s connection
//! pings (a peer silent for 2.5 s is dropped), 15 s stream pings, 5 minutes maximum clock skew,
//! 60 s default deadline. Rapid open-and-cancel costs only the streams alive at one time
//! (bounded by `max_incoming_muxes`): a cancelled handler's future is dropped at once.
//! Control messages owed to a peer (credits, pongs, cancels) have no queue of their own: they
//! are state of the live requests and streams, so the limits above bound them too.
//!
//! # TLS
//!
//! With the `tls` feature (rustls with the ring provider), a host's scheme decides: `https://`
//! hosts are dialed as `wss://` through TLS, and [`serve`] terminates TLS when the node's own
//! URL is `https://`. Certificates come from a [`TlsConfig`] given to
//! [`ManagerBuilder::tls`]; the server is verified against the configured CA roots and the
//! host name or IP address of its URL, and mutual TLS is one switch away:
//!
//! ```no_run
//! # #[cfg(feature = "tls")]
//! # fn example() -> Result<(), rgrid::Error> {
//! use rgrid::{Manager, TlsConfig};
//!
//! let tls = TlsConfig::builder()
//!     .ca_file("ca.pem") // the CA that signed every node's certificate
//!     .identity_files("node1.pem", "node1.key") // served, and shown to servers that ask
//!     .require_client_cert() // optional: mutual TLS
//!     .build()?;
//! let hosts = ["https://10.0.0.1:9000", "https://10.0.0.2:9000"];
//! let manager = Manager::builder(hosts[0], hosts).token("secret").tls(tls).build()?;
//! # let _ = manager; Ok(()) }
//! ```
//!
//! There is no plaintext fallback: building a manager with an `https://` remote and no TLS
//! config fails, a failed handshake when dialing is [`Error::Tls`] (and the dial loop keeps
//! retrying over TLS), and [`serve`] drops clients that fail the TLS handshake (bounded by
//! [`Options::handshake_timeout`]). As in MinIO, the per-message xxh3 checksum is left off
//! only when both ends of a connection are `https://`, since TLS already protects the bytes.
//! [`TlsConfigBuilder::dangerous_accept_any_server_cert`] turns off server verification for
//! test set-ups only. [`Manager::service`] mounted on another HTTP server leaves TLS to that
//! server.
//!
//! # Features
//!
//! * `tls`: TLS with rustls (see above): [`TlsConfig`], [`ManagerBuilder::tls`],
//!   [`transport::WsDialer::tls`].
//! * `test-util`: `test_util::LocalGrid` (local n-node grids, on loopback or in memory for
//!   tests on paused time) and fault hooks on [`Connection`] (`kill`, `block_inbound`). Not
//!   a stable API.
//! * `metrics`: counters, latency histograms, in-flight gauges and payload bytes of every
//!   call and stream through the `metrics` facade (see Observability above); it adds no
//!   public items.
//!
//! # Layout
//!
//! The private modules, each depending only on modules listed before it:
//!
//! * `error`: [`Error`] and [`RemoteError`].
//! * `options`: [`Options`], the route and size constants, the writer's merge limits.
//! * `util`: the poison-recovering `lock()`.
//! * `auth`: token sources and validators ([`GridJwt`], [`MinioJwt`], [`StaticToken`]) and
//!   the upgrade check type [`HttpAuthFn`].
//! * `transport/dial.rs` and `transport/tls.rs` (inside the public [`transport`]): the
//!   dialer trait [`ConnDialer`], [`WebSocket`] and its byte stream, host URL parsing; the
//!   [`TlsConfig`].
//! * `handlers`: [`HandlerCtx`], the handler function types, [`RawStreamHandler`], the handles a
//!   stream handler gets ([`StreamIn`], [`StreamOut`], over a trait the connection
//!   implements) and the registry a connection dispatches through.
//! * `ctx`: `ManagerCtx`, what the connections of a manager share: options, registry,
//!   shutdown signal and task tracker, identity, token source and validator, dialer, TLS.
//! * `connection`: [`Connection`], [`CallOptions`], [`Route`], [`State`], [`ConnStats`] and the test
//!   hooks; `session/` drives one websocket (reader, writer, timers, single requests),
//!   `stream.rs` is the caller's side of a stream, `serve_stream.rs` the handler's side
//!   (its task, and what its handles do through the session).
//! * `manager`: [`Manager`] and [`ManagerBuilder`]: the hosts, the dial loops and both sides
//!   of the handshake.
//!
//! The public modules sit on top: [`transport`] (its `http.rs` holds [`serve`],
//! [`GridService`](transport::GridService) and [`Manager::service`]; `ws.rs` the default
//! dialer), [`typed`] and `test_util`.

// The TLS items the docs link to exist only with the `tls` feature.
#![cfg_attr(not(feature = "tls"), allow(rustdoc::broken_intra_doc_links))]
// docs.rs (all features, `--cfg docsrs`) marks every feature-gated item with its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admission;
mod auth;
pub mod codec;
mod connection;
mod ctx;
mod error;
mod handlers;
mod manager;
mod metrics;
mod options;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;
pub mod transport;
pub mod typed;
mod util;

pub use rgrid_proto as proto;
pub use rgrid_proto::{HandlerId, SubrouteId};
/// The crates whose types rgrid's API hands out, re-exported so that an app uses the same
/// versions: payloads are [`bytes::Bytes`], streams implement
/// [`futures_util::Stream`](futures_util::stream::Stream), and a handler's context gives a
/// [`CancellationToken`](tokio_util::sync::CancellationToken).
pub use {bytes, futures_util, tokio_util};

pub use auth::{
    GridJwt, HttpAuthFn, MAX_TOKEN_LEN, MinioJwt, PeerInfo, StaticToken, TokenSource,
    TokenValidator,
};
pub use connection::{
    CallOptions, CallStream, ConnFailure, ConnStats, Connection, Responses, Route, State,
    StreamSender,
};
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub use connection::{InboundBlock, OutboundBlock};
pub use error::{Cause, Error, PeerDown, PeersDown, RemoteError};
pub use handlers::{
    BoxFuture, HandlerCtx, Priority, RawStreamHandler, SingleHandlerFn, StreamHandlerFn, StreamIn,
    StreamOut,
};
pub use manager::{Manager, ManagerBuilder};
pub use options::{
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_ROUTE_PATH, FRAME_SLACK, LOCK_ROUTE_PATH,
    MAX_HANDSHAKE_MESSAGE_SIZE, Options,
};
pub use transport::{ConnDialer, WebSocket, connect_ws, serve, serve_connection};
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use transport::{TlsConfig, TlsConfigBuilder};
