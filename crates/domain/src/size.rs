//! Sizes as people read them, the same in build output, `slip` and the dashboard.

/// A size as people read it: `812 B`, `64 KiB`, `8.5 MiB`, `4 GiB`. Bytes are exact, KiB
/// rounded up (a non-empty size never reads as nothing), MiB and GiB whole when they are,
/// else to one decimal.
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    match bytes {
        0..KIB => format!("{bytes} B"),
        KIB..MIB => format!("{} KiB", bytes.div_ceil(KIB)),
        MIB..GIB if bytes.is_multiple_of(MIB) => format!("{} MiB", bytes / MIB),
        MIB..GIB => format!("{:.1} MiB", bytes as f64 / MIB as f64),
        _ if bytes.is_multiple_of(GIB) => format!("{} GiB", bytes / GIB),
        _ => format!("{:.1} GiB", bytes as f64 / GIB as f64),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_say_them() {
        let shown: Vec<String> = [
            0,
            812,
            1024,
            1025,
            64 * 1024,
            8_912_896,
            128 << 20,
            1_288_490_189,
            4 << 30,
        ]
        .into_iter()
        .map(super::human_size)
        .collect();
        assert_eq!(
            shown,
            [
                "0 B", "812 B", "1 KiB", "2 KiB", "64 KiB", "8.5 MiB", "128 MiB", "1.2 GiB",
                "4 GiB"
            ]
        );
    }
}
