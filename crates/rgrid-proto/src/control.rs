//! Handshake and control payloads (spec §3.2, §3.12, §3.16).
//!
//! Each is a msgpack map keyed by MinIO's field names, written in Go's field order exactly as
//! msgp writes it, so a Go peer decodes it and golden bytes stay stable. Decoders accept the
//! fields in any order, skip unknown fields (so peers can add fields compatibly), treat a
//! missing field as its zero value like msgp does, and reject bytes after the map.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BufMut;

use crate::error::{DecodeError, EncodeError};
use crate::msgpack::{self, Reader};

/// A point in time as the protocol carries it: Unix seconds and nanoseconds, UTC.
///
/// On the wire it is msgp's extension type 5: `c7 0c 05`, seconds as a big-endian `i64`,
/// nanoseconds as a big-endian `i32`. The decoder also accepts the msgpack standard timestamp
/// (extension −1) and nil. This crate never reads the clock: callers convert with
/// [`GridTime::from_system_time`].
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct GridTime {
    /// Seconds since the Unix epoch (negative before it).
    pub unix_secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanos: u32,
}

impl GridTime {
    /// Go's zero `time.Time` (January 1, year 1, UTC), which a Go pong carries when the ping
    /// had an empty payload (spec §15.2). Also what a nil or missing time decodes to.
    pub const GO_ZERO: GridTime = GridTime {
        unix_secs: -62_135_596_800,
        nanos: 0,
    };

    /// The Unix epoch.
    pub const UNIX_EPOCH: GridTime = GridTime {
        unix_secs: 0,
        nanos: 0,
    };

    /// Converts a system time. Times outside the `i64` seconds range saturate.
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => GridTime {
                unix_secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                if d.subsec_nanos() == 0 {
                    GridTime {
                        unix_secs: -secs,
                        nanos: 0,
                    }
                } else {
                    GridTime {
                        unix_secs: (-secs).saturating_sub(1),
                        nanos: 1_000_000_000 - d.subsec_nanos(),
                    }
                }
            }
        }
    }

    /// Converts to a system time, or `None` when the platform cannot represent it.
    pub fn to_system_time(self) -> Option<SystemTime> {
        let nanos = Duration::from_nanos(u64::from(self.nanos));
        if self.unix_secs >= 0 {
            UNIX_EPOCH
                .checked_add(Duration::from_secs(self.unix_secs.unsigned_abs()))?
                .checked_add(nanos)
        } else {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(self.unix_secs.unsigned_abs()))?
                .checked_add(nanos)
        }
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> i128 {
        self.unix_secs as i128 * 1_000_000_000 + self.nanos as i128
    }

    /// The absolute difference between two times (for the handshake's clock-skew check).
    pub fn abs_diff(self, other: GridTime) -> Duration {
        let d = self.unix_nanos().abs_diff(other.unix_nanos());
        Duration::new(
            u64::try_from(d / 1_000_000_000).unwrap_or(u64::MAX),
            (d % 1_000_000_000) as u32,
        )
    }

    fn put<B: BufMut>(self, out: &mut B) {
        msgpack::put_time(out, self.unix_secs, self.nanos);
    }

    fn read(rd: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match rd.time()? {
            Some((unix_secs, nanos)) => GridTime { unix_secs, nanos },
            None => GridTime::GO_ZERO,
        })
    }
}

impl Default for GridTime {
    /// Go's zero time, as msgp decodes a missing field.
    fn default() -> Self {
        GridTime::GO_ZERO
    }
}

/// The handshake request the dialer sends with [`crate::Op::CONNECT`] (MinIO `connectReq`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectRequest<'a> {
    /// The dialing manager's instance id (a random UUID per process start).
    pub id: [u8; 16],
    /// The dialer's own host name, exactly as it appears in the host list.
    pub host: &'a str,
    /// The dialer's clock.
    pub time: GridTime,
    /// The authentication token.
    pub token: &'a str,
}

impl<'a> ConnectRequest<'a> {
    /// Appends the msgpack map `{ID, Host, Time, Token}`.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        msgpack::put_fixmap_header(out, 4);
        msgpack::put_key(out, "ID");
        msgpack::put_bin(out, &self.id)?;
        msgpack::put_key(out, "Host");
        msgpack::put_str(out, self.host)?;
        msgpack::put_key(out, "Time");
        self.time.put(out);
        msgpack::put_key(out, "Token");
        msgpack::put_str(out, self.token)
    }

    /// Decodes a connect request payload.
    pub fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut v = ConnectRequest::default();
        decode_map(payload, |key, rd| {
            match key {
                b"ID" => v.id = read_id(rd)?,
                b"Host" => v.host = rd.str("Host")?,
                b"Time" => v.time = GridTime::read(rd)?,
                b"Token" => v.token = rd.str("Token")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// The handshake answer with [`crate::Op::CONNECT_RESPONSE`] (MinIO `connectResp`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectResponse<'a> {
    /// The accepting manager's instance id.
    pub id: [u8; 16],
    /// Whether the connection was accepted.
    pub accepted: bool,
    /// Why it was refused (empty when accepted). Invalid UTF-8 is replaced, not rejected.
    pub rejected_reason: Cow<'a, str>,
}

impl<'a> ConnectResponse<'a> {
    /// Appends the msgpack map `{ID, Accepted, RejectedReason}`.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        msgpack::put_fixmap_header(out, 3);
        msgpack::put_key(out, "ID");
        msgpack::put_bin(out, &self.id)?;
        msgpack::put_key(out, "Accepted");
        msgpack::put_bool(out, self.accepted);
        msgpack::put_key(out, "RejectedReason");
        msgpack::put_str(out, &self.rejected_reason)
    }

    /// Decodes a connect response payload.
    pub fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut v = ConnectResponse::default();
        decode_map(payload, |key, rd| {
            match key {
                b"ID" => v.id = read_id(rd)?,
                b"Accepted" => v.accepted = rd.bool()?,
                b"RejectedReason" => v.rejected_reason = read_lossy(rd)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// The payload of [`crate::Op::MUX_CONNECT_ERROR`] (MinIO `muxConnectError`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MuxConnectError<'a> {
    /// Why the request or stream was refused. Invalid UTF-8 is replaced, not rejected.
    pub error: Cow<'a, str>,
}

impl<'a> MuxConnectError<'a> {
    /// Appends the msgpack map `{Error}`.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        msgpack::put_fixmap_header(out, 1);
        msgpack::put_key(out, "Error");
        msgpack::put_str(out, &self.error)
    }

    /// Decodes a mux connect error payload.
    pub fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut v = MuxConnectError::default();
        decode_map(payload, |key, rd| {
            if key == b"Error" {
                v.error = read_lossy(rd)?;
                return Ok(true);
            }
            Ok(false)
        })?;
        Ok(v)
    }
}

/// The payload of a [`crate::Op::PING`] (MinIO `pingMsg`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PingMsg {
    /// The sender's clock when it sent the ping; echoed in the pong for round-trip timing.
    pub t: GridTime,
}

impl PingMsg {
    /// Appends the msgpack map `{t}`.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        msgpack::put_fixmap_header(out, 1);
        msgpack::put_key(out, "t");
        self.t.put(out);
    }

    /// Decodes a ping payload. An empty payload (Go mux pings, older senders) is accepted and
    /// reads as Go's zero time.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut v = PingMsg::default();
        if payload.is_empty() {
            return Ok(v);
        }
        decode_map(payload, |key, rd| {
            if key == b"t" {
                v.t = GridTime::read(rd)?;
                return Ok(true);
            }
            Ok(false)
        })?;
        Ok(v)
    }
}

/// The payload of a [`crate::Op::PONG`] (MinIO `pongMsg`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PongMsg<'a> {
    /// The pinged mux does not exist on the handler side ("remote terminated call").
    pub not_found: bool,
    /// The handler side failed the ping (e.g. sequence mismatch); nil on the wire when `None`.
    pub err: Option<Cow<'a, str>>,
    /// The ping's time, echoed.
    pub t: GridTime,
}

impl<'a> PongMsg<'a> {
    /// Appends the msgpack map `{nf, e, t}`.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        msgpack::put_fixmap_header(out, 3);
        msgpack::put_key(out, "nf");
        msgpack::put_bool(out, self.not_found);
        msgpack::put_key(out, "e");
        match &self.err {
            Some(e) => msgpack::put_str(out, e)?,
            None => msgpack::put_nil(out),
        }
        msgpack::put_key(out, "t");
        self.t.put(out);
        Ok(())
    }

    /// Decodes a pong payload. An empty payload reads as an empty pong.
    pub fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut v = PongMsg::default();
        if payload.is_empty() {
            return Ok(v);
        }
        decode_map(payload, |key, rd| {
            match key {
                b"nf" => v.not_found = rd.bool()?,
                b"e" => v.err = rd.str_bytes_or_nil()?.map(String::from_utf8_lossy),
                b"t" => v.t = GridTime::read(rd)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// Walks a msgpack map, handing each key and a reader positioned at its value to `field`.
/// Values that `field` does not consume (it returns `false`) are skipped.
fn decode_map<'a>(
    payload: &'a [u8],
    mut field: impl FnMut(&'a [u8], &mut Reader<'a>) -> Result<bool, DecodeError>,
) -> Result<(), DecodeError> {
    let mut rd = Reader::new(payload);
    let entries = rd.map_len()?;
    for _ in 0..entries {
        let key = rd.str_bytes_or_nil()?.unwrap_or_default();
        if !field(key, &mut rd)? {
            rd.skip_value()?;
        }
    }
    match rd.rest().len() {
        0 => Ok(()),
        n => Err(DecodeError::TrailingBytes(n)),
    }
}

fn read_id(rd: &mut Reader<'_>) -> Result<[u8; 16], DecodeError> {
    let raw = rd.bin_or_nil()?.unwrap_or_default();
    <[u8; 16]>::try_from(raw).map_err(|_| DecodeError::BadFieldLength {
        field: "ID",
        want: 16,
        got: raw.len(),
    })
}

fn read_lossy<'a>(rd: &mut Reader<'a>) -> Result<Cow<'a, str>, DecodeError> {
    Ok(String::from_utf8_lossy(
        rd.str_bytes_or_nil()?.unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_time_round_trip() {
        for t in [
            GridTime {
                unix_secs: 1_700_000_000,
                nanos: 123_456_789,
            },
            GridTime::UNIX_EPOCH,
            GridTime {
                unix_secs: -5,
                nanos: 250_000_000,
            },
            GridTime::GO_ZERO,
        ] {
            let st = t.to_system_time().unwrap();
            assert_eq!(GridTime::from_system_time(st), t);
        }
    }

    #[test]
    fn abs_diff_is_symmetric() {
        let a = GridTime {
            unix_secs: 100,
            nanos: 900_000_000,
        };
        let b = GridTime {
            unix_secs: 400,
            nanos: 100_000_000,
        };
        assert_eq!(a.abs_diff(b), Duration::from_millis(299_200));
        assert_eq!(b.abs_diff(a), a.abs_diff(b));
    }

    #[test]
    fn unknown_fields_are_skipped_and_missing_fields_are_zero() {
        // {"X": [1, {"y": nil}], "Accepted": true}
        let payload = [
            0x82, 0xa1, b'X', 0x92, 0x01, 0x81, 0xa1, b'y', 0xc0, 0xa8, b'A', b'c', b'c', b'e',
            b'p', b't', b'e', b'd', 0xc3,
        ];
        let r = ConnectResponse::decode(&payload).unwrap();
        assert!(r.accepted);
        assert_eq!(r.id, [0; 16]);
        assert_eq!(r.rejected_reason, "");
    }

    #[test]
    fn malformed_control_payloads_are_errors() {
        // Not a map.
        assert!(ConnectRequest::decode(&[0x91, 0x00]).is_err());
        // ID of the wrong length.
        let bad_id = [0x81, 0xa2, b'I', b'D', 0xc4, 0x02, 1, 2];
        assert_eq!(
            ConnectRequest::decode(&bad_id),
            Err(DecodeError::BadFieldLength {
                field: "ID",
                want: 16,
                got: 2
            })
        );
        // Trailing garbage.
        assert_eq!(
            MuxConnectError::decode(&[0x80, 0x00]),
            Err(DecodeError::TrailingBytes(1))
        );
        // Host not UTF-8.
        let bad_host = [0x81, 0xa4, b'H', b'o', b's', b't', 0xa1, 0xff];
        assert_eq!(
            ConnectRequest::decode(&bad_host),
            Err(DecodeError::InvalidUtf8 { field: "Host" })
        );
        // Bad time extension.
        let bad_time = [0x81, 0xa1, b't', 0xd4, 0x05, 0x00];
        assert!(matches!(
            PingMsg::decode(&bad_time),
            Err(DecodeError::BadTime(_))
        ));
        // Truncated map.
        assert!(matches!(
            PongMsg::decode(&[0x83, 0xa2, b'n']),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn standard_timestamps_are_accepted() {
        // {"t": timestamp32(1000)}
        let ts32 = [0x81, 0xa1, b't', 0xd6, 0xff, 0, 0, 0x03, 0xe8];
        assert_eq!(
            PingMsg::decode(&ts32).unwrap().t,
            GridTime {
                unix_secs: 1000,
                nanos: 0
            }
        );
        // timestamp64: nanos 5, secs 7 => (5 << 34) | 7
        let v: u64 = (5 << 34) | 7;
        let mut ts64 = vec![0x81, 0xa1, b't', 0xd7, 0xff];
        ts64.extend_from_slice(&v.to_be_bytes());
        assert_eq!(
            PingMsg::decode(&ts64).unwrap().t,
            GridTime {
                unix_secs: 7,
                nanos: 5
            }
        );
        // timestamp96: nanos 9, secs -1
        let mut ts96 = vec![0x81, 0xa1, b't', 0xc7, 12, 0xff];
        ts96.extend_from_slice(&9u32.to_be_bytes());
        ts96.extend_from_slice(&(-1i64).to_be_bytes());
        assert_eq!(
            PingMsg::decode(&ts96).unwrap().t,
            GridTime {
                unix_secs: -1,
                nanos: 9
            }
        );
    }
}
