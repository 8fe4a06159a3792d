fn main() {
    use std::sync::Arc;
    use aivo_load::traffic::{make_source, Domain, Mix, population::Population};
    let population = Arc::new(Population::generate(7, 20, 2000));
    let mix = Mix::new(&Domain::Focus.default_mix()).unwrap();
    let mut src = make_source(Domain::Focus, mix, population, "run".into(), 0, 7);
    let now = time::OffsetDateTime::now_utc();
    let t = std::time::Instant::now();
    let mut bytes = 0;
    for s in 0..1_000_000 { bytes += src.next_event(s, now).payload.len(); }
    let e = t.elapsed();
    println!("{:.0} ns/event, {} bytes", e.as_nanos() as f64 / 1e6, bytes / 1_000_000);
    let t = std::time::Instant::now();
    for s in 0..1_000_000u64 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, "0196b1c2-aaaa-7bbb-8ccc-123456789012");
        headers.insert("Aivo-Run", "20261127T112426Z-focus-burst");
        headers.insert("Aivo-Publisher", "3");
        headers.insert("Aivo-Seq", s.to_string().as_str());
        std::hint::black_box(headers);
    }
    println!("{:.0} ns/headers", t.elapsed().as_nanos() as f64 / 1e6);
}
