//! The `rgrid` command.
//!
//! Until the CLI lands (local demo grid, `serve`, `call`, `bench`), running it shows what the
//! protocol core does: it encodes and decodes the specification's example request and prints
//! which node dials which in a local four-node grid.

use rgrid_proto::{DecodeLimits, Flags, HandlerId, Message, MuxId, Op, should_dial};

fn main() {
    println!(
        "rgrid {} — MinIO grid v1 compatible RPC",
        env!("CARGO_PKG_VERSION")
    );
    println!("The protocol core is in place; the local demo grid arrives with the CLI.\n");

    let request = Message {
        mux_id: MuxId(5),
        deadline_ms: 60_000,
        handler: HandlerId::DISK_INFO,
        flags: Flags::CRC | Flags::EOF,
        payload: Some(b"abc"),
        ..Message::new(Op::REQUEST)
    };
    let mut frame = Vec::with_capacity(request.encoded_len());
    if let Err(e) = request.encode(&mut frame) {
        eprintln!("encode failed: {e}");
        std::process::exit(1);
    }
    let hex: Vec<String> = frame.iter().map(|b| format!("{b:02x}")).collect();
    println!(
        "Spec example request ({} bytes): {}",
        frame.len(),
        hex.join(" ")
    );
    match Message::decode(&frame, &DecodeLimits::default()) {
        Ok(m) => println!(
            "Decoded: mux {} op {} handler {} flags {} deadline {} ms payload {:?}\n",
            m.mux_id,
            m.op,
            m.handler,
            m.flags,
            m.deadline_ms,
            String::from_utf8_lossy(m.payload_bytes())
        ),
        Err(e) => {
            eprintln!("decode failed: {e}");
            std::process::exit(1);
        }
    }

    let hosts: Vec<String> = (1..=4)
        .map(|i| format!("http://127.0.0.1:{}", 9000 + i))
        .collect();
    println!("Who dials in a local 4-node grid:");
    for (i, a) in hosts.iter().enumerate() {
        for b in hosts.iter().skip(i + 1) {
            let (from, to) = if should_dial(a, b) { (a, b) } else { (b, a) };
            println!("  {from} -> {to}");
        }
    }
}
