//! Codec micro-benchmarks: encode and decode of a minimal ("zero-value") message and of a
//! message with a 512-byte payload, without and with the xxh3 checksum trailer, plus a merged
//! frame of 50 messages.
//!
//! Go's generated msgp benchmarks for the same `message` struct, measured on the project
//! machine: AppendMsg 21 ns, Unmarshal 36 ns (zero value, 0 allocations).
//!
//! Run: `cargo bench -p rgrid-proto --bench codec`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rgrid_proto::{DecodeLimits, Flags, Frame, HandlerId, Message, MuxId, Op, put_merged_header};

fn messages(payload: &[u8]) -> [(&'static str, Message<'_>); 3] {
    // Go's zero-value message has op 0, which is not a valid op; the same 9 bytes with a valid
    // op (a ping) is the smallest message that decodes.
    let zero = Message::new(Op::PING);
    let p512 = Message {
        mux_id: MuxId(123_456),
        seq: 3,
        deadline_ms: 60_000,
        handler: HandlerId::TEST,
        flags: Flags::EOF,
        payload: Some(payload),
        ..Message::new(Op::REQUEST)
    };
    let p512_crc = Message {
        flags: Flags::EOF | Flags::CRC,
        ..p512
    };
    [
        ("zero-value", zero),
        ("payload-512", p512),
        ("payload-512-crc", p512_crc),
    ]
}

fn bench_codec(c: &mut Criterion) {
    let payload = [0x5au8; 512];
    let limits = DecodeLimits::default();

    let mut group = c.benchmark_group("encode");
    for (name, msg) in messages(&payload) {
        let mut buf = Vec::with_capacity(1024);
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                black_box(&msg).encode(&mut buf).unwrap();
                black_box(&buf);
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decode");
    for (name, msg) in messages(&payload) {
        let bytes = msg.encode_to_vec().unwrap();
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| black_box(Message::decode(black_box(&bytes), &limits).unwrap()))
        });
    }
    group.finish();

    // A merged frame of 50 small messages (the writer's batch limit), built in place and
    // iterated.
    let small = Message {
        mux_id: MuxId(77),
        seq: 1,
        flags: Flags::EOF | Flags::CRC,
        payload: Some(&payload[..32]),
        ..Message::new(Op::MUX_SERVER_MSG)
    };
    let mut group = c.benchmark_group("merged-50");
    group.throughput(Throughput::Elements(50));
    let mut buf = Vec::with_capacity(8192);
    group.bench_function("encode", |b| {
        b.iter(|| {
            buf.clear();
            put_merged_header(&mut buf, 50);
            for _ in 0..50 {
                black_box(&small).encode_merged_entry(&mut buf).unwrap();
            }
            black_box(&buf);
        })
    });
    let frame = buf.clone();
    group.bench_function("decode", |b| {
        b.iter(|| {
            let Ok(Frame::Merged(m)) = Frame::decode(black_box(&frame), &limits) else {
                unreachable!()
            };
            for msg in m.iter() {
                black_box(msg.unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
