//! Builder benchmarks, each against a baseline measured in the same run:
//! - layer assembly (reproducible tar + parallel gzip) against `tar -c | gzip -1` of the same
//!   tree;
//! - the platform's overhead on a build of a small app: total build time minus the time
//!   spent inside buildpack scripts.
//!
//! Run with `cargo bench -p slipway-builder --bench build` (or `scripts/bench`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use slipway_builder::{BuildJob, Builder, BuilderConfig, image};

const ROUNDS: usize = 5;
const TREE_MB: usize = 256;
const BUILDS: usize = 15;

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();

    // A tree like a built app: many small files, some large ones, half compressible.
    let tree = dir.path().join("tree");
    make_tree(&tree, TREE_MB);
    let mut ours = Vec::new();
    let mut baseline = Vec::new();
    let mut compressed = 0;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar -cf - -C '{}' . | gzip -1 > /dev/null",
                tree.display()
            ))
            .status()
            .unwrap();
        assert!(status.success());
        baseline.push(started.elapsed());
        let started = Instant::now();
        let layer = image::layer_from_dir(&tree, image::APP_DIR, dir.path()).unwrap();
        ours.push(started.elapsed());
        compressed = layer.size;
    }
    let (ours, baseline) = (median(&ours), median(&baseline));
    let mb = TREE_MB as f64;
    println!(
        "builder benchmark: {ROUNDS} rounds, medians; {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "layer assembly, {TREE_MB} MB tree: slipway {:.2} s ({:.0} MB/s, {:.0} MB compressed), tar|gzip -1 {:.2} s ({:.0} MB/s): {:.2}x",
        ours.as_secs_f64(),
        mb / ours.as_secs_f64(),
        compressed as f64 / 1e6,
        baseline.as_secs_f64(),
        mb / baseline.as_secs_f64(),
        baseline.as_secs_f64() / ours.as_secs_f64()
    );

    // Platform overhead: a small app and a buildpack that does next to nothing.
    let builder = runtime
        .block_on(Builder::new(BuilderConfig {
            data_dir: dir.path().join("data"),
            timeout: BuilderConfig::DEFAULT_TIMEOUT,
            max_output: BuilderConfig::DEFAULT_MAX_OUTPUT,
            limits: slipway_builder::Limits::BUILD,
            sandbox: slipway_builder::SandboxMode::Auto,
            registry: None,
            run_image: None,
            buildpacks_dir: Some(dir.path().to_path_buf()),
        }))
        .unwrap();
    let buildpack = dir.path().join("buildpack");
    for (script, body) in [
        ("detect", "echo Bench"),
        ("compile", "echo '-----> compiled'"),
        ("release", "echo '--- {}'"),
    ] {
        let path = buildpack.join("bin").join(script);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let config = BTreeMap::from([("BUILDPACK_URL".to_owned(), buildpack.display().to_string())]);
    let (mut totals, mut inside, mut overheads) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..BUILDS {
        let source = dir.path().join(format!("app{round}"));
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("Procfile"), "web: ./serve\n").unwrap();
        for i in 0..20 {
            std::fs::write(
                source.join(format!("file{i}.txt")),
                format!("line {i}\n").repeat(200),
            )
            .unwrap();
        }
        let job = BuildJob {
            app: "bench",
            commit: "0123456789abcdef",
            source: &source,
            config: &config,
            stack: domain::Stack::Buildpacks,
        };
        let output = runtime
            .block_on(builder.build(&job, &|_: &str| {}))
            .unwrap();
        totals.push(output.timings.total);
        inside.push(output.timings.in_buildpacks);
        overheads.push(
            output
                .timings
                .total
                .saturating_sub(output.timings.in_buildpacks),
        );
    }
    println!(
        "build of a small app ({BUILDS} builds): total {:.1} ms, in buildpack scripts {:.1} ms, platform overhead {:.1} ms",
        ms(median(&totals)),
        ms(median(&inside)),
        ms(median(&overheads))
    );
}

fn make_tree(root: &Path, mb: usize) {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut random = |len: usize| {
        let mut bytes = vec![0u8; len];
        for chunk in bytes.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = chunk.len();
            chunk.copy_from_slice(&x.to_le_bytes()[..n]);
        }
        bytes
    };
    let mut written = 0;
    let mut i = 0;
    while written < mb * 1024 * 1024 {
        let dir = root.join(format!("pkg{}", i % 50));
        std::fs::create_dir_all(&dir).unwrap();
        let (name, bytes) = match i % 10 {
            0 => (format!("blob{i}.bin"), random(2 * 1024 * 1024)),
            1..=4 => (
                format!("lib{i}.js"),
                format!("function f{i}(a, b) {{ return a + b * {i}; }}\n")
                    .repeat(2000)
                    .into_bytes(),
            ),
            _ => (format!("data{i}.bin"), random(64 * 1024)),
        };
        written += bytes.len();
        std::fs::write(dir.join(name), bytes).unwrap();
        i += 1;
    }
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
