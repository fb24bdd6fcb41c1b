//! Op codes and flag bits of the message tuple (spec §3.4, §3.5).

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign, Not};

/// The operation of a message: field 5 of the tuple.
///
/// A `u8` newtype rather than an enum because the wire carries a plain byte; the associated
/// constants are every value the protocol defines. Decoding rejects any other value
/// (see [`Op::is_known`]).
#[derive(Clone, Copy, Default, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct Op(pub u8);

impl Op {
    /// Dialer to acceptor: the handshake request (payload: connect request map).
    pub const CONNECT: Op = Op(1);
    /// Acceptor to dialer: the handshake answer (payload: connect response map).
    pub const CONNECT_RESPONSE: Op = Op(2);
    /// Mux 0: connection keepalive, sent by both sides. Other muxes: stream liveness ping from
    /// the caller side.
    pub const PING: Op = Op(3);
    /// The answer to a ping, with the ping's mux id and sequence number.
    pub const PONG: Op = Op(4);
    /// Caller to handler: open a stream.
    pub const CONNECT_MUX: Op = Op(5);
    /// Handler side to caller: the stream or request was rejected (payload: `{"Error": str}`).
    pub const MUX_CONNECT_ERROR: Op = Op(6);
    /// Tells the caller side to drop its mux client.
    pub const DISCONNECT_CLIENT_MUX: Op = Op(7);
    /// Tells the handler side to cancel its stream (caller cancellation).
    pub const DISCONNECT_SERVER_MUX: Op = Op(8);
    /// Caller to handler: one request-stream message, or EOF.
    pub const MUX_CLIENT_MSG: Op = Op(9);
    /// Handler to caller: one response message, or the final EOF.
    pub const MUX_SERVER_MSG: Op = Op(10);
    /// Caller to handler: returns one send credit to the handler side.
    pub const UNBLOCK_SRV_MUX: Op = Op(11);
    /// Handler to caller: returns one send credit to the caller side.
    pub const UNBLOCK_CL_MUX: Op = Op(12);
    /// Handler to caller: the stream was created.
    pub const ACK_MUX: Op = Op(13);
    /// Caller to handler: a single request.
    pub const REQUEST: Op = Op(14);
    /// Handler to caller: the single response.
    pub const RESPONSE: Op = Op(15);
    /// Defined by the protocol ("remote wants to disconnect") but never sent by MinIO.
    pub const DISCONNECT: Op = Op(16);
    /// A container of several messages in one frame.
    pub const MERGED: Op = Op(17);

    /// Every op the protocol defines, in numeric order.
    pub const ALL: [Op; 17] = [
        Op::CONNECT,
        Op::CONNECT_RESPONSE,
        Op::PING,
        Op::PONG,
        Op::CONNECT_MUX,
        Op::MUX_CONNECT_ERROR,
        Op::DISCONNECT_CLIENT_MUX,
        Op::DISCONNECT_SERVER_MUX,
        Op::MUX_CLIENT_MSG,
        Op::MUX_SERVER_MSG,
        Op::UNBLOCK_SRV_MUX,
        Op::UNBLOCK_CL_MUX,
        Op::ACK_MUX,
        Op::REQUEST,
        Op::RESPONSE,
        Op::DISCONNECT,
        Op::MERGED,
    ];

    /// Whether this is one of the protocol's op codes (1..=17).
    #[inline]
    pub const fn is_known(self) -> bool {
        matches!(self.0, 1..=17)
    }

    /// The name used by MinIO's stringer (without the `Op` prefix), or `None` for unknown ops.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "Connect",
            2 => "ConnectResponse",
            3 => "Ping",
            4 => "Pong",
            5 => "ConnectMux",
            6 => "MuxConnectError",
            7 => "DisconnectClientMux",
            8 => "DisconnectServerMux",
            9 => "MuxClientMsg",
            10 => "MuxServerMsg",
            11 => "UnblockSrvMux",
            12 => "UnblockClMux",
            13 => "AckMux",
            14 => "Request",
            15 => "Response",
            16 => "Disconnect",
            17 => "Merged",
            _ => return None,
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Op({})", self.0),
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The flag bits of a message: field 6 of the tuple.
#[derive(Clone, Copy, Default, Eq, Hash, PartialEq)]
pub struct Flags(pub u8);

impl Flags {
    /// No flags.
    pub const NONE: Flags = Flags(0);
    /// A 4-byte little-endian xxh3 low-32 checksum trailer is present.
    pub const CRC: Flags = Flags(0x01);
    /// End of stream in this direction; always set on single requests and responses.
    pub const EOF: Flags = Flags(0x02);
    /// Stateless stream request (never supported; answered with a mux connect error).
    pub const STATELESS: Flags = Flags(0x04);
    /// The payload is a UTF-8 error string.
    pub const PAYLOAD_IS_ERR: Flags = Flags(0x08);
    /// The payload is empty but not nil.
    pub const PAYLOAD_IS_ZERO: Flags = Flags(0x10);
    /// A 32-byte subroute id precedes the checksum.
    pub const SUBROUTE: Flags = Flags(0x20);

    /// The flags with their short names, in bit order (names as MinIO prints them).
    const NAMES: [(Flags, &'static str); 6] = [
        (Flags::CRC, "CRC"),
        (Flags::EOF, "EOF"),
        (Flags::STATELESS, "SL"),
        (Flags::PAYLOAD_IS_ERR, "ERR"),
        (Flags::PAYLOAD_IS_ZERO, "ZERO"),
        (Flags::SUBROUTE, "SUB"),
    ];

    /// Whether every bit of `other` is set.
    #[inline]
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the bits of `other`.
    #[inline]
    pub fn set(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    /// Clears the bits of `other`.
    #[inline]
    pub fn clear(&mut self, other: Flags) {
        self.0 &= !other.0;
    }

    /// Returns these flags with the bits of `other` cleared.
    #[inline]
    #[must_use]
    pub const fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }

    /// Returns these flags with the bits of `other` set.
    #[inline]
    #[must_use]
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// Whether no bit is set.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Flags {
    type Output = Flags;
    fn bitand(self, rhs: Flags) -> Flags {
        Flags(self.0 & rhs.0)
    }
}

impl Not for Flags {
    type Output = Flags;
    fn not(self) -> Flags {
        Flags(!self.0)
    }
}

impl fmt::Display for Flags {
    /// Prints the set flags joined by `|` (e.g. `CRC|EOF`), unknown bits in hex, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            if first {
                first = false;
                Ok(())
            } else {
                f.write_str("|")
            }
        };
        let mut known = 0u8;
        for (flag, name) in Flags::NAMES {
            known |= flag.0;
            if self.contains(flag) {
                sep(f)?;
                f.write_str(name)?;
            }
        }
        let unknown = self.0 & !known;
        if unknown != 0 {
            sep(f)?;
            write!(f, "0x{unknown:02x}")?;
        }
        if self.0 == 0 {
            f.write_str("none")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_values_are_the_spec_values() {
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(usize::from(op.0), i + 1);
            assert!(op.is_known());
            assert!(op.name().is_some());
        }
        assert!(!Op(0).is_known());
        assert!(!Op(18).is_known());
        assert_eq!(Op(0).to_string(), "Op(0)");
        assert_eq!(Op::UNBLOCK_SRV_MUX.to_string(), "UnblockSrvMux");
    }

    #[test]
    fn flag_values_and_names() {
        assert_eq!(Flags::CRC.0, 1);
        assert_eq!(Flags::EOF.0, 2);
        assert_eq!(Flags::STATELESS.0, 4);
        assert_eq!(Flags::PAYLOAD_IS_ERR.0, 8);
        assert_eq!(Flags::PAYLOAD_IS_ZERO.0, 16);
        assert_eq!(Flags::SUBROUTE.0, 32);
        assert_eq!((Flags::CRC | Flags::EOF).to_string(), "CRC|EOF");
        assert_eq!(Flags(0x3f).to_string(), "CRC|EOF|SL|ERR|ZERO|SUB");
        assert_eq!(Flags(0x81).to_string(), "CRC|0x80");
        assert_eq!(Flags::NONE.to_string(), "none");
        let mut f = Flags::NONE;
        f.set(Flags::EOF | Flags::SUBROUTE);
        f.clear(Flags::SUBROUTE);
        assert_eq!(f, Flags::EOF);
        assert!(f.contains(Flags::EOF));
        assert!(!f.contains(Flags::EOF | Flags::CRC));
        assert_eq!(f.with(Flags::CRC).without(Flags::EOF), Flags::CRC);
    }
}
