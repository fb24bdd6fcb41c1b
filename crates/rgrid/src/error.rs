//! The error type of every rgrid call.

use std::fmt;
use std::sync::Arc;

use rgrid_proto::HandlerId;

/// An error produced by a handler on the remote node: only its text crosses the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RemoteError(String);

impl RemoteError {
    /// An error in the words of `text`: a string, or any error (`RemoteError::new(&e)`,
    /// `.map_err(RemoteError::new)`), whose `Display` becomes the text the caller gets.
    pub fn new(text: impl fmt::Display) -> Self {
        RemoteError(text.to_string())
    }

    /// The text the handler returned.
    pub fn text(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RemoteError {}

/// A local error inside a handler (say, a failed [`crate::StreamOut::send`]) becomes the
/// handler's remote error, so handlers can use `?`.
impl From<Error> for RemoteError {
    fn from(e: Error) -> Self {
        RemoteError(e.to_string())
    }
}

impl From<String> for RemoteError {
    fn from(s: String) -> Self {
        RemoteError(s)
    }
}

impl From<&str> for RemoteError {
    fn from(s: &str) -> Self {
        RemoteError(s.to_owned())
    }
}

/// Why a call (or registration) failed.
///
/// Remote errors (the handler's own text, [`Error::Remote`]) are kept apart from local ones so
/// callers can choose a retry policy: after [`Error::Disconnected`] the outcome of the call is
/// unknown (the handler may or may not have run); after [`Error::Remote`] the handler ran and
/// refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The remote handler returned this error, or the remote refused the call (unknown
    /// handler or subroute), or the handler panicked.
    #[error("remote: {0}")]
    Remote(RemoteError),
    /// The connection to the remote is not up, or was lost while the call was in flight.
    /// Whatever path produced it, this variant is the one to match.
    #[error("remote disconnected")]
    Disconnected,
    /// The call's deadline passed before a response arrived.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The call was cancelled locally.
    #[error("call cancelled")]
    Cancelled,
    /// The handler id is not a valid handler id.
    #[error("unknown handler {0}")]
    UnknownHandler(HandlerId),
    /// A handler is already registered under this id (and subroute).
    #[error("handler {0} already registered")]
    HandlerAlreadyExists(HandlerId),
    /// A response arrived out of sequence.
    #[error("out-of-sequence item received: want {want}, got {got}")]
    IncorrectSequence {
        /// The sequence number expected.
        want: u32,
        /// The sequence number received.
        got: u32,
    },
    /// A payload is larger than the configured maximum message size.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// The payload size.
        size: usize,
        /// The configured limit ([`crate::Options::max_message_size`]).
        limit: usize,
    },
    /// The manager is shutting down or has shut down.
    #[error("grid manager shut down")]
    Shutdown,
    /// The host is not part of the grid.
    #[error("unknown host {0}")]
    UnknownHost(String),
    /// The peer refused the connection during the handshake.
    #[error("connection rejected: {0}")]
    Rejected(String),
    /// The peer broke the protocol (malformed frame, bad handshake, ...). Never produced by
    /// a mistake of this node's own code: that is [`Error::Usage`].
    #[error("protocol error: {0}")]
    Protocol(String),
    /// This node's code used the API wrongly (sent on a stream that takes no input, or after
    /// closing its input, ...). Nothing was sent to the peer.
    #[error("invalid use: {0}")]
    Usage(String),
    /// An established connection ended, and why (the peer closed it, no pong for two ping
    /// intervals, a protocol violation, ...). Only in [`crate::Connection::last_error`]:
    /// calls in flight on it fail with [`Error::Disconnected`].
    #[error("connection lost: {0}")]
    Lost(String),
    /// The transport (TCP, TLS, websocket) failed; [`std::error::Error::source`] leads to
    /// the underlying error (an [`std::io::Error`], say) when there is one.
    #[error("transport error: {0}")]
    Transport(#[source] Cause),
    /// TLS failed while dialing: the handshake failed (untrusted, expired or wrong-name
    /// server certificate, a peer that does not speak TLS) or the server refused this
    /// node's client certificate. Only produced with the `tls` feature; a TLS failure is
    /// never retried in plaintext.
    #[error("tls: {0}")]
    Tls(#[source] Cause),
    /// The manager was configured wrongly.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A typed value could not be encoded.
    #[error("encode: {0}")]
    Encode(String),
    /// A typed response could not be decoded (the call itself succeeded remotely).
    #[error("decode: {0}")]
    Decode(String),
}

impl Error {
    /// Whether this is [`Error::Disconnected`].
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Error::Disconnected)
    }

    /// The remote error, if this is one.
    pub fn as_remote(&self) -> Option<&RemoteError> {
        match self {
            Error::Remote(e) => Some(e),
            _ => None,
        }
    }
}

impl From<RemoteError> for Error {
    fn from(e: RemoteError) -> Self {
        Error::Remote(e)
    }
}

impl From<rgrid_proto::DecodeError> for Error {
    fn from(e: rgrid_proto::DecodeError) -> Self {
        Error::Protocol(e.to_string())
    }
}

impl From<tokio_websockets::Error> for Error {
    fn from(e: tokio_websockets::Error) -> Self {
        Error::Transport(Cause::from_error(e))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Transport(Cause::from_error(e))
    }
}

/// What a transport or TLS failure said, and the error underneath when there is one (its
/// [`source`](std::error::Error::source): an [`std::io::Error`] to match on its
/// [`kind`](std::io::Error::kind), say). Two causes are equal when their words are.
#[derive(Clone)]
pub struct Cause {
    text: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Cause {
    /// A cause in words only.
    pub fn new(text: impl Into<String>) -> Self {
        Cause {
            text: text.into(),
            source: None,
        }
    }

    /// A cause in `context`'s words followed by the source's own (`"context: source"`),
    /// keeping the source.
    pub fn with_source(
        context: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Cause {
            text: format!("{context}: {source}"),
            source: Some(Arc::new(source)),
        }
    }

    /// A cause in the source's own words, keeping the source.
    pub fn from_error(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause {
            text: source.to_string(),
            source: Some(Arc::new(source)),
        }
    }

    /// The words (which include the source's).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The underlying error as `E`, if it is one (`cause.downcast_ref::<std::io::Error>()`).
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.source.as_deref().and_then(|e| e.downcast_ref::<E>())
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Cause").field(&self.text).finish()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Cause {}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<String> for Cause {
    fn from(text: String) -> Self {
        Cause::new(text)
    }
}

impl From<&str> for Cause {
    fn from(text: &str) -> Self {
        Cause::new(text)
    }
}

/// A host whose connection is not up ([`PeersDown`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerDown {
    /// The host, as in the host list.
    pub host: String,
    /// Its connection's state.
    pub state: crate::State,
    /// Why it is down, if known.
    pub last_error: Option<crate::ConnFailure>,
}

/// Peers still not connected when [`crate::Manager::wait_for_peers`] gave up.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeersDown {
    /// Every host still down, by host name.
    pub down: Vec<PeerDown>,
}

impl fmt::Display for PeersDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} peer(s) not connected:", self.down.len())?;
        for (i, p) in self.down.iter().enumerate() {
            let sep = if i == 0 { " " } else { "; " };
            write!(f, "{sep}{} ({}", p.host, p.state)?;
            match &p.last_error {
                Some(e) if e.refused_here => write!(f, ": refused here: {}", e.error)?,
                Some(e) => write!(f, ": {}", e.error)?,
                None => {}
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl std::error::Error for PeersDown {}
