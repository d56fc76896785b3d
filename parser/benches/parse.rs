//! Parses the whole real-world corpus (`../shared/corpus/real-world`, read in place) and
//! reports throughput. `cargo bench -p rbuild-parser`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn corpus_files() -> Vec<String> {
    let root = std::env::var_os("RBUILD_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
        .join("real-world");
    let mut files = Vec::new();
    let repos = std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    for repo in repos.flatten() {
        if !repo.path().is_dir() || repo.file_name() == "_licenses" {
            continue;
        }
        for f in std::fs::read_dir(repo.path()).into_iter().flatten().flatten() {
            if let Ok(text) = std::fs::read_to_string(f.path()) {
                files.push(text);
            }
        }
    }
    files
}

fn bench(c: &mut Criterion) {
    let files = corpus_files();
    let bytes: usize = files.iter().map(String::len).sum();
    let mut group = c.benchmark_group("real-world corpus");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("syntax tree", |b| {
        b.iter(|| files.iter().filter(|f| rbuild_parser::parse_syntax(f).is_ok()).count())
    });
    group.bench_function("typed instructions", |b| {
        b.iter(|| files.iter().filter(|f| rbuild_parser::parse(f).is_ok()).count())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
