//! Bad input gets a clear error and a non-zero exit, never a panic: a table of cases across every
//! subcommand, each running the real binary in its own temporary directory and asserting the exit
//! code and what stderr (and, for warnings, stdout) must say. Uses the committed fixtures and tiny
//! settings, so the whole table runs in seconds.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crowdout::sweep::ResultRow;

/// Exit code of every error (`main` prints `error: ...` and exits 2; clap's usage errors too).
const ERR: i32 = 2;

/// What a case puts in its temporary directory before running.
enum Setup {
    /// A file with these bytes.
    File(&'static str, Vec<u8>),
    /// A copy of the committed fixture `name` under `fx/<name>/`, then `edit` applied to it.
    Fixture(&'static str, fn(&Path)),
    /// An empty directory.
    Dir(&'static str),
}

struct Case {
    name: &'static str,
    /// Arguments; `{tmp}` is replaced by the case's temporary directory.
    args: Vec<String>,
    setup: Vec<Setup>,
    /// Environment variables (`{tmp}` replaced); `CROWDOUT_FIXTURES` is set to `{tmp}/fx` when a
    /// fixture is copied.
    env: Vec<(&'static str, String)>,
    code: i32,
    stderr: Vec<&'static str>,
    stdout: Vec<&'static str>,
}

fn case<S: AsRef<str>>(name: &'static str, args: &[S], code: i32, stderr: &[&'static str]) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.as_ref().to_string()).collect(),
        setup: Vec::new(),
        env: Vec::new(),
        code,
        stderr: stderr.to_vec(),
        stdout: Vec::new(),
    }
}

impl Case {
    fn file(mut self, rel: &'static str, bytes: impl Into<Vec<u8>>) -> Self {
        self.setup.push(Setup::File(rel, bytes.into()));
        self
    }
    fn fixture(mut self, name: &'static str, edit: fn(&Path)) -> Self {
        self.setup.push(Setup::Fixture(name, edit));
        self
    }
    fn dir(mut self, rel: &'static str) -> Self {
        self.setup.push(Setup::Dir(rel));
        self
    }
    fn env(mut self, k: &'static str, v: &str) -> Self {
        self.env.push((k, v.to_string()));
        self
    }
    fn stdout(mut self, s: &[&'static str]) -> Self {
        self.stdout = s.to_vec();
        self
    }
}

/// `crowdout train` on the Fashion-MNIST fixture with tiny settings; `--epochs`, `--batch-size`,
/// `--model` and `--dataset` get defaults unless `extra` sets them.
fn train(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<&str> = vec!["train", "--train-limit", "50", "--test-limit", "50", "--quiet"];
    let has = |f: &str| extra.contains(&f);
    if !has("--threads") {
        v.extend(["--threads", "1"]);
    }
    if !has("--dataset") {
        v.extend(["--dataset", "fashion-mnist-mini"]);
    }
    if !has("--model") {
        v.extend(["--model", "softmax"]);
    }
    if !has("--epochs") {
        v.extend(["--epochs", "0.1"]);
    }
    if !has("--batch-size") && !has("--sample-rate") {
        v.extend(["--batch-size", "10"]);
    }
    v.extend_from_slice(extra);
    v.into_iter().map(String::from).collect()
}

fn dp(extra: &[&str]) -> Vec<String> {
    let mut v = vec!["--dp"];
    v.extend_from_slice(extra);
    train(&v)
}

fn account(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<&str> = vec!["account"];
    let has = |f: &str| extra.iter().any(|e| e.starts_with(f));
    if !has("--sample-rate") && !has("--batch-size") {
        v.extend(["--sample-rate", "0.01"]);
    }
    if !has("--noise-multiplier") && !has("--target-epsilon") {
        v.extend(["--noise-multiplier", "1"]);
    }
    if !has("--steps") && !has("--epochs") && !has("--no-steps") {
        v.extend(["--steps", "100"]);
    }
    if !has("--delta") {
        v.extend(["--delta", "1e-5"]);
    }
    v.extend(extra.iter().filter(|e| **e != "--no-steps"));
    v.into_iter().map(String::from).collect()
}

const SPEC: &str = r#"name = "t"
[grid]
dataset = ["fashion-mnist-mini"]
model = ["softmax"]
collectives = ["trigger=patch:size=3:pos=br:value=1,target=0"]
alpha = [0.0, 0.1]
privacy = ["none"]
seed = [0]
[train]
epochs = 1
batch_size = 10
lr = 0.1
train_subset = 50
test_subset = 50
"#;

fn spec_with(from: &str, to: &str) -> String {
    assert!(SPEC.contains(from), "{from}");
    SPEC.replacen(from, to, 1)
}

fn sweep_case(name: &'static str, spec: String, stderr: &[&'static str]) -> Case {
    case(name, &["sweep", "{tmp}/spec.toml", "--out", "{tmp}/out", "--no-progress"], ERR, stderr)
        .file("spec.toml", spec)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_end(&mut out).unwrap();
    out
}

fn results_header(edit: impl Fn(&mut Vec<String>)) -> String {
    let mut h = ResultRow::header();
    edit(&mut h);
    h.join(",") + "\n"
}

const CSV_OK_ROWS: &str = "1,a,0\n2,b,1\n3,a,0\n4,b,1\n5,a,0\n6,b,1\n";

fn cases() -> Vec<Case> {
    let mut c = vec![
        // ---- mail text (issue 15) ----
        case(
            "text: an empty mail",
            &train(&["--dataset", "spamassassin:dir={tmp}/corpus", "--model", "transformer"]),
            ERR,
            &["empty.txt", "empty mail"],
        )
        .file("corpus/easy-ham-1/empty.txt", "")
        .file("corpus/spam-1/1.txt", "Subject: win cash\n\nclick now"),
        case(
            "text: a mail longer than max_len is cut to its first T tokens",
            &["data", "info", "spamassassin:dir={tmp}/corpus,max_len=8"],
            0,
            &[],
        )
        .file("corpus/easy-ham-1/long.txt", format!("Subject: s\n\n{}", "word ".repeat(500)))
        .file("corpus/easy-ham-1/short.txt", "Subject: s\n\nword")
        .file("corpus/spam-1/1.txt", "Subject: win cash\n\nclick now")
        .file("corpus/spam-1/2.txt", "Subject: win cash\n\nclick now")
        .file("corpus/spam-2/3.txt", "Subject: cash\n\nnow")
        .stdout(&["shape [8]", "filled to T"]),
        case(
            "text: a trigger token already in the vocabulary",
            &train(&[
                "--dataset",
                "spamassassin-mini",
                "--model",
                "transformer",
                "--collective",
                "alpha=0.1,target=1,trigger=token:every=4:token=5",
            ]),
            ERR,
            &["token id 5", "already in the vocabulary as `", "absent from the clean corpus", "unseen id in"],
        ),
        case(
            "text: a trigger token past the embedding table",
            &train(&[
                "--dataset",
                "spamassassin-mini",
                "--model",
                "embedding",
                "--collective",
                "alpha=0.1,target=1,trigger=token:position=2:token=100000",
            ]),
            ERR,
            &["token id 100000", "past the model's embedding table"],
        ),
        case(
            "text: token every=1",
            &train(&[
                "--dataset",
                "spamassassin-mini",
                "--model",
                "transformer",
                "--collective",
                "alpha=0.1,target=1,trigger=token:every=1:token=70",
            ]),
            ERR,
            &["every = 1", "must be >= 2"],
        ),
        case(
            "text: a corpus directory that does not exist",
            &train(&["--dataset", "spamassassin:dir={tmp}/nowhere", "--model", "transformer"]),
            ERR,
            &["nowhere", "mail corpus directory does not exist"],
        ),
        case(
            "text: an unknown group folder",
            &train(&["--dataset", "spamassassin:dir={tmp}/corpus", "--model", "transformer"]),
            ERR,
            &["inbox", "unknown mail group folder"],
        )
        .file("corpus/inbox/1.txt", "Subject: hi\n\nthere"),
        case(
            "text: unknown option of the spamassassin spec",
            &train(&["--dataset", "spamassassin-mini:maxlen=8", "--model", "transformer"]),
            ERR,
            &["maxlen=8", "max_len"],
        ),
        // ---- train: flags ----
        case(
            "train: unknown dataset",
            &train(&["--dataset", "nonsense"]),
            ERR,
            &["unknown dataset `nonsense`", "fashion-mnist"],
        ),
        case("train: unknown model", &train(&["--model", "nope"]), ERR, &["'nope'", "--model", "softmax"]),
        case("train: epochs 0", &train(&["--epochs", "0"]), ERR, &["epochs = 0", "> 0"]),
        case("train: epochs NaN", &train(&["--epochs", "nan"]), ERR, &["epochs = NaN"]),
        case("train: lr -1", &train(&["--lr", "-1"]), ERR, &["lr = -1", "> 0"]),
        case("train: batch size 0", &train(&["--batch-size", "0"]), ERR, &["--batch-size = 0"]),
        case("train: momentum 1", &train(&["--momentum", "1"]), ERR, &["momentum = 1", "[0, 1)"]),
        case(
            "train: train limit 0",
            &[
                "train",
                "--dataset",
                "fashion-mnist-mini",
                "--model",
                "softmax",
                "--train-limit",
                "0",
                "--epochs",
                "0.1",
                "--quiet",
            ],
            ERR,
            &["training set = 0 examples", "--train-limit"],
        ),
        case(
            "train: test limit 0",
            &[
                "train",
                "--dataset",
                "fashion-mnist-mini",
                "--model",
                "softmax",
                "--train-limit",
                "50",
                "--test-limit",
                "0",
                "--epochs",
                "0.1",
                "--quiet",
            ],
            ERR,
            &["test set = 0 examples", "--test-limit"],
        ),
        case(
            "train: --input-norm fit under --dp",
            &dp(&["--noise-multiplier", "1", "--input-norm", "fit"]),
            ERR,
            &["--input-norm = fit", "not covered by the accountant"],
        ),
        case(
            "train: --input-norm not a number",
            &train(&["--input-norm", "0.3/x"]),
            ERR,
            &["--input-norm", "\"x\""],
        ),
        case(
            "train: --input-norm wrong channel count",
            &train(&["--input-norm", "0.3,0.4/0.3,0.4"]),
            ERR,
            &["input_norm", "1 channels"],
        ),
        case(
            "train: --input-norm std 0",
            &train(&["--input-norm", "0.3/0"]),
            ERR,
            &["input_norm = 0", "> 0"],
        ),
        case(
            "train: unknown --lr-schedule",
            &train(&["--lr-schedule", "step"]),
            ERR,
            &["--lr-schedule", "step"],
        ),
        case("train: epochs 1e300", &train(&["--epochs", "1e300"]), ERR, &["epochs = 1e300", "10⁹"]),
        case("account: epochs 1e300", &account(&["--epochs", "1e300"]), ERR, &["--epochs 1e300", "2^64"]),
        case(
            "account: PLD at T = 2^64 - 1",
            &account(&["--steps", "18446744073709551615"]),
            ERR,
            &["beyond what the PLD grid can index", "RDP"],
        ),
        case("train: threads 0", &train(&["--threads", "0"]), ERR, &["--threads", "got 0"]),
        case(
            "train: delta 0",
            &dp(&["--noise-multiplier", "1", "--delta", "0"]),
            ERR,
            &["delta = 0", "(0, 1)"],
        ),
        case(
            "train: delta 1",
            &dp(&["--noise-multiplier", "1", "--delta", "1"]),
            ERR,
            &["delta = 1", "(0, 1)"],
        ),
        case(
            "train: sample rate 0",
            &dp(&["--noise-multiplier", "1", "--sample-rate", "0"]),
            ERR,
            &["--sample-rate", "(0, 1]", "got 0"],
        ),
        case(
            "train: sample rate 1.5",
            &dp(&["--noise-multiplier", "1", "--sample-rate", "1.5"]),
            ERR,
            &["--sample-rate", "got 1.5"],
        ),
        case(
            "train: sample rate without --dp",
            &train(&["--sample-rate", "0.1"]),
            ERR,
            &["--sample-rate needs --dp"],
        ),
        case(
            "train: noise multiplier -1",
            &dp(&["--noise-multiplier", "-1"]),
            ERR,
            &["--noise-multiplier = -1", "≥ 0"],
        ),
        case(
            "train: max grad norm 0",
            &dp(&["--noise-multiplier", "1", "--max-grad-norm", "0"]),
            ERR,
            &["--max-grad-norm = 0", "> 0"],
        ),
        case(
            "train: max grad norm -1",
            &dp(&["--noise-multiplier", "1", "--max-grad-norm", "-1"]),
            ERR,
            &["--max-grad-norm = -1"],
        ),
        case(
            "train: target epsilon 0",
            &dp(&["--target-epsilon", "0"]),
            ERR,
            &["--target-epsilon = 0", "> 0"],
        ),
        case("train: target epsilon -1", &dp(&["--target-epsilon", "-1"]), ERR, &["--target-epsilon = -1"]),
        case("train: --dp without sigma or epsilon", &dp(&[]), ERR, &["--dp needs --noise-multiplier"]),
        case("train: sigma without --dp", &train(&["--noise-multiplier", "1"]), ERR, &["--dp"]),
        case(
            "train: delta >= 1/N warns",
            &dp(&["--noise-multiplier", "1", "--delta", "0.5"]),
            0,
            &["warning: delta = 0.5 is larger than 1/N"],
        ),
        // ---- train: collectives ----
        case(
            "train: trigger larger than the image",
            &train(&["--collective", "alpha=0.1,target=0,trigger=patch:size=40:pos=br:value=1"]),
            ERR,
            &["does not fit examples of shape [1, 28, 28]", "size = 40"],
        ),
        case(
            "train: trigger row outside the image",
            &train(&["--collective", "alpha=0.1,target=0,trigger=patch:size=3:row=30:col=2:value=1"]),
            ERR,
            &["does not fit", "row = 30"],
        ),
        case(
            "train: target not a class",
            &train(&["--collective", "alpha=0.1,target=12,trigger=patch:size=3:pos=br:value=1"]),
            ERR,
            &["target = 12 is not a class label"],
        ),
        case(
            "train: collective alpha 1.5",
            &train(&["--collective", "alpha=1.5,target=0,trigger=patch:size=3:pos=br:value=1"]),
            ERR,
            &["--collective", "alpha = 1.5 is not in (0, 1)"],
        ),
        case(
            "train: collective unknown key",
            &train(&["--collective", "alpha=0.1,target=0,trigger=patch:size=3:pos=br:value=1,foo=1"]),
            ERR,
            &["unknown key `foo`"],
        ),
        case(
            "train: unknown trigger kind",
            &train(&["--collective", "alpha=0.1,target=0,trigger=star:size=3"]),
            ERR,
            &["`star`", "expected patch, grid, offset or token"],
        ),
        case(
            "train: patch value outside [0, 1]",
            &train(&["--collective", "alpha=0.1,target=0,trigger=patch:size=3:pos=br:value=2"]),
            ERR,
            &["value = 2"],
        ),
        case(
            "train: offset trigger on images",
            &train(&["--collective", "alpha=0.1,target=0,trigger=offset:feature=3:shift_std=1"]),
            ERR,
            &["an offset needs tabular examples"],
        ),
        case(
            "train: offset feature out of range",
            &train(&[
                "--dataset",
                "adult-mini",
                "--collective",
                "alpha=0.1,target=0,trigger=offset:feature=500:shift_std=1",
            ]),
            ERR,
            &["feature = 500 is out of range"],
        ),
        // ---- train: outputs ----
        case(
            "train: --out on a full disk",
            &train(&["--out", "/dev/full"]),
            ERR,
            &["--out /dev/full", "No space left on device"],
        ),
        case(
            "train: --out under a regular file",
            &train(&["--out", "{tmp}/file.txt/sub/run.json"]),
            ERR,
            &["--out", "file.txt/sub/run.json", "Not a directory"],
        )
        .file("file.txt", "x"),
        case(
            "train: --out directly under a regular file",
            &train(&["--out", "{tmp}/file.txt/run.json"]),
            ERR,
            &["--out", "file.txt is a file, not a directory"],
        )
        .file("file.txt", "x"),
        // ---- data files ----
        case(
            "train: CSV file missing",
            &train(&["--dataset", "csv:{tmp}/missing.csv"]),
            ERR,
            &["missing.csv", "No such file or directory"],
        ),
        case(
            "train: CSV with NaN",
            &train(&["--dataset", "csv:{tmp}/nan.csv"]),
            ERR,
            &["nan.csv", "line 4", "column `x`", "`NaN`"],
        )
        .file("nan.csv", format!("x,c,label\n1,a,0\n2,b,1\nNaN,a,0\n{CSV_OK_ROWS}")),
        case(
            "train: CSV without the label column",
            &train(&["--dataset", "csv:{tmp}/nolabel.csv"]),
            ERR,
            &["nolabel.csv", "label column `label` is not in the header"],
        )
        .file("nolabel.csv", format!("x,c,y\n{CSV_OK_ROWS}")),
        case(
            "train: CSV row with a missing column",
            &train(&["--dataset", "csv:{tmp}/ragged.csv"]),
            ERR,
            &["ragged.csv", "line 3", "2 fields"],
        )
        .file("ragged.csv", format!("x,c,label\n1,a,0\n2,1\n{CSV_OK_ROWS}")),
        case(
            "data info: CSV with inf",
            &["data", "info", "csv:{tmp}/inf.csv"],
            ERR,
            &["inf.csv", "line 2", "`inf`"],
        )
        .file("inf.csv", format!("x,c,label\ninf,a,0\n{CSV_OK_ROWS}")),
        case(
            "data info: CSV test fraction 1.5",
            &["data", "info", "csv:{tmp}/ok.csv", "--test-fraction", "1.5"],
            ERR,
            &["ok.csv", "test fraction 1.5 is not in (0, 1)"],
        )
        .file("ok.csv", format!("x,c,label\n{CSV_OK_ROWS}")),
        case("train: truncated IDX", &train(&[]), ERR, &["train-images-idx3-ubyte", "trunc"])
            .fixture("fashion-mnist-mini", |d| {
                let raw = gunzip(&d.join("train-images-idx3-ubyte.gz"));
                std::fs::remove_file(d.join("train-images-idx3-ubyte.gz")).unwrap();
                std::fs::write(d.join("train-images-idx3-ubyte"), &raw[..raw.len() / 2]).unwrap();
            })
            .env("CROWDOUT_SKIP_VERIFY", "1"),
        case("train: corrupt gzip", &train(&[]), ERR, &["train-labels-idx1-ubyte.gz"]).fixture(
            "fashion-mnist-mini",
            |d| {
                let p = d.join("train-labels-idx1-ubyte.gz");
                let mut b = std::fs::read(&p).unwrap();
                let n = b.len();
                for x in &mut b[12..n - 8] {
                    *x ^= 0x5a;
                }
                std::fs::write(&p, b).unwrap();
            },
        ),
        case(
            "train: checksum mismatch",
            &train(&[]),
            ERR,
            &["t10k-labels-idx1-ubyte", "sha256", "CROWDOUT_SKIP_VERIFY"],
        )
        .fixture("fashion-mnist-mini", |d| {
            let p = d.join("t10k-labels-idx1-ubyte.gz");
            let mut raw = gunzip(&p);
            let last = raw.len() - 1;
            raw[last] = (raw[last] + 1) % 10; // still a valid label, so only the hash catches it
            std::fs::write(&p, gz(&raw)).unwrap();
        }),
        case(
            "data verify: checksum mismatch",
            &["data", "verify", "fashion-mnist-mini"],
            ERR,
            &["sha256", "train-images-idx3-ubyte"],
        )
        .fixture("fashion-mnist-mini", |d| {
            let p = d.join("train-images-idx3-ubyte.gz");
            let mut raw = gunzip(&p);
            raw[100] ^= 1;
            std::fs::write(&p, gz(&raw)).unwrap();
        }),
        case("train: fixture file missing", &train(&[]), ERR, &["t10k-images-idx3-ubyte"])
            .fixture("fashion-mnist-mini", |d| {
                std::fs::remove_file(d.join("t10k-images-idx3-ubyte.gz")).unwrap()
            }),
        case(
            "train: dataset not fetched",
            &train(&["--dataset", "mnist"]),
            ERR,
            &["dataset `mnist` is not in", "crowdout data fetch mnist"],
        )
        .dir("empty")
        .env("CROWDOUT_DATA", "{tmp}/empty"),
        case(
            "train: CIFAR-10 directory missing",
            &train(&["--dataset", "cifar10:{tmp}/nope"]),
            ERR,
            &["nope", "does not exist"],
        ),
        case(
            "data info: unknown dataset",
            &["data", "info", "imagenet"],
            ERR,
            &["unknown dataset `imagenet`"],
        ),
        // ---- account ----
        case(
            "account: sample rate 0",
            &account(&["--sample-rate", "0"]),
            ERR,
            &["--sample-rate must be in (0, 1], got 0"],
        ),
        case(
            "account: sample rate 1.5",
            &account(&["--sample-rate", "1.5"]),
            ERR,
            &["--sample-rate must be in (0, 1], got 1.5"],
        ),
        case(
            "account: noise multiplier -1",
            &account(&["--noise-multiplier", "-1"]),
            ERR,
            &["--noise-multiplier must be finite and >= 0, got -1"],
        ),
        case("account: delta 0", &account(&["--delta", "0"]), ERR, &["--delta must be in (0, 1), got 0"]),
        case("account: delta 1", &account(&["--delta", "1"]), ERR, &["--delta must be in (0, 1), got 1"]),
        case(
            "account: target epsilon 0",
            &account(&["--target-epsilon", "0"]),
            ERR,
            &["--target-epsilon must be finite and > 0, got 0"],
        ),
        case(
            "account: target epsilon -1",
            &account(&["--target-epsilon", "-1"]),
            ERR,
            &["--target-epsilon", "got -1"],
        ),
        case("account: steps 0", &account(&["--steps", "0"]), ERR, &["--steps must be >= 1, got 0"]),
        case(
            "account: epochs 0",
            &account(&["--epochs", "0"]),
            ERR,
            &["--epochs must be finite and > 0, got 0"],
        ),
        case(
            "account: batch size 0",
            &account(&["--batch-size", "0", "--dataset-size", "100"]),
            ERR,
            &["--batch-size must be in [1, --dataset-size = 100], got 0"],
        ),
        case("account: no steps", &account(&["--no-steps"]), ERR, &["give either --steps T or --epochs E"]),
        case(
            "account: noise multiplier not a number",
            &account(&["--noise-multiplier", "abc"]),
            ERR,
            &["'abc'", "--noise-multiplier"],
        ),
        case(
            "account: large delta gives epsilon 0, not negative",
            &account(&["--delta", "0.5", "--method", "rdp"]),
            0,
            &[],
        )
        .stdout(&["RDP: ε = 0 "]),
        // ---- bound ----
        case(
            "bound hardt: alpha 1.5",
            &["bound", "hardt", "--alpha", "1.5", "--delta-gap", "0.1", "--xi", "0.01"],
            ERR,
            &["--alpha", "1.5"],
        ),
        case(
            "bound hardt: alpha -1",
            &["bound", "hardt", "--alpha", "-1", "--delta-gap", "0.1", "--xi", "0.01"],
            ERR,
            &["--alpha", "-1"],
        ),
        case(
            "bound critical-mass: target 0",
            &["bound", "critical-mass", "--target", "0", "--delta-gap", "0.1", "--xi", "0.01"],
            ERR,
            &["--target", "0"],
        ),
        case(
            "bound dpsgd: margins file missing",
            &[
                "bound",
                "dpsgd",
                "--margins",
                "{tmp}/m.csv",
                "--theta0-dist",
                "1",
                "--lambda",
                "0.1",
                "--lr",
                "0.1",
                "--steps",
                "10",
                "--sigma",
                "1",
                "--clip",
                "1",
                "--n-train",
                "100",
                "--q",
                "0.1",
                "--dim",
                "10",
            ],
            ERR,
            &["m.csv"],
        ),
        // ---- sweep ----
        sweep_case(
            "sweep: input_norm fit with a DP arm",
            spec_with("privacy = [\"none\"]", "privacy = [\"none\", \"sigma=1\"]\nclip = [1.0]")
                .replace("test_subset = 50", "test_subset = 50\ninput_norm = \"fit\""),
            &["spec.toml:16", "train.input_norm", "accountant does not cover"],
        ),
        sweep_case(
            "sweep: alpha 1.5",
            spec_with("alpha = [0.0, 0.1]", "alpha = [1.5]"),
            &["spec.toml:6", "grid.alpha", "1.5 is outside [0, 1)"],
        ),
        sweep_case(
            "sweep: epsilon -1",
            spec_with("privacy = [\"none\"]", "privacy = [\"eps=-1\"]\nclip = [1.0]"),
            &["spec.toml", "line 7", "ε must be finite and > 0"],
        ),
        sweep_case(
            "sweep: sigma -1",
            spec_with("privacy = [\"none\"]", "privacy = [\"sigma=-1\"]\nclip = [1.0]"),
            &["line 7", "σ must be finite and ≥ 0"],
        ),
        sweep_case(
            "sweep: clip 0",
            spec_with("privacy = [\"none\"]", "privacy = [\"sigma=1\"]\nclip = [0.0]"),
            &["spec.toml:8", "grid.clip", "> 0"],
        ),
        sweep_case(
            "sweep: private arm without clip",
            spec_with("privacy = [\"none\"]", "privacy = [\"eps=1\"]"),
            &["grid.clip", "missing"],
        ),
        sweep_case(
            "sweep: delta 1",
            spec_with("lr = 0.1", "lr = 0.1\ndelta = 1.0"),
            &["spec.toml:13", "train.delta", "outside (0, 1)"],
        ),
        sweep_case(
            "sweep: unknown key",
            spec_with("lr = 0.1", "lr = 0.1\nfrobnicate = 3"),
            &["line 13", "unknown field `frobnicate`"],
        ),
        sweep_case(
            "sweep: wrong type",
            spec_with("epochs = 1", "epochs = \"one\""),
            &["line 10", "invalid type: string \"one\""],
        ),
        sweep_case(
            "sweep: unknown model",
            spec_with("[\"softmax\"]", "[\"nomodel\"]"),
            &["spec.toml:4", "grid.model", "unknown model `nomodel`"],
        ),
        sweep_case(
            "sweep: unknown dataset",
            spec_with("[\"fashion-mnist-mini\"]", "[\"nonsense\"]"),
            &["spec.toml:3", "grid.dataset", "unknown dataset `nonsense`"],
        ),
        sweep_case(
            "sweep: bad collective",
            spec_with("pos=br", "pos=middle"),
            &["spec.toml:5", "grid.collectives", "middle"],
        ),
        case(
            "sweep: spec file missing",
            &["sweep", "{tmp}/none.toml"],
            ERR,
            &["none.toml", "No such file or directory"],
        ),
        sweep_case(
            "sweep: results.csv of another schema",
            SPEC.to_string(),
            &["results.csv", "not a crowdout results file", "another schema_version"],
        )
        .file("out/results.csv", results_header(|h| h.push("extra_column".into()))),
        case(
            "sweep: output under a regular file",
            &["sweep", "{tmp}/spec.toml", "--out", "{tmp}/file.txt/out", "--no-progress"],
            ERR,
            &["file.txt/out", "Not a directory"],
        )
        .file("spec.toml", SPEC)
        .file("file.txt", "x"),
        case(
            "sweep: bad shard",
            &["sweep", "{tmp}/spec.toml", "--shard", "3/2", "--dry-run"],
            ERR,
            &["--shard 3/2"],
        )
        .file("spec.toml", SPEC),
        // ---- report ----
        case(
            "report: file missing",
            &["report", "{tmp}/none.csv", "--out", "{tmp}/rep"],
            ERR,
            &["none.csv", "No such file or directory"],
        ),
        case(
            "report: foreign CSV",
            &["report", "{tmp}/foreign.csv", "--out", "{tmp}/rep"],
            ERR,
            &["foreign.csv", "not a crowdout results file", "column 1 is `a`"],
        )
        .file("foreign.csv", "a,b,c\n1,2,3\n"),
        case(
            "report: CSV of another crowdout schema",
            &["report", "{tmp}/old.csv", "--out", "{tmp}/rep"],
            ERR,
            &["old.csv", "another schema_version", "column 6 is `alpha_renamed`"],
        )
        .file("old.csv", results_header(|h| h[5] = "alpha_renamed".into())),
        case(
            "report: empty file",
            &["report", "{tmp}/empty.csv", "--out", "{tmp}/rep"],
            ERR,
            &["empty.csv", "not a crowdout results file"],
        )
        .file("empty.csv", ""),
        case(
            "report: merge onto a directory",
            &["report", "{tmp}/r.csv", "--merge", "--out", "{tmp}/adir"],
            ERR,
            &["adir", "not a regular file"],
        )
        .file("r.csv", results_header(|_| ()))
        .dir("adir"),
        case(
            "report: merge without --out",
            &["report", "{tmp}/r.csv", "--merge"],
            ERR,
            &["--merge needs --out"],
        )
        .file("r.csv", results_header(|_| ())),
        case(
            "report: target success 1.5",
            &["report", "{tmp}/r.csv", "--target-success", "1.5", "--out", "{tmp}/rep"],
            ERR,
            &["--target-success 1.5", "(0, 1]"],
        )
        .file("r.csv", results_header(|_| ())),
        case(
            "report: output under a regular file",
            &["report", "{tmp}/r.csv", "--out", "{tmp}/file.txt/rep", "--no-plots"],
            ERR,
            &["file.txt/rep", "Not a directory"],
        )
        .file("r.csv", results_header(|_| ()))
        .file("file.txt", "x"),
    ];
    // Unknown subcommand / flag: clap's own errors, still exit 2 and no panic.
    c.push(case("unknown subcommand", &["frobnicate"], ERR, &["unrecognized subcommand 'frobnicate'"]));
    c.push(case(
        "unknown flag",
        &["account", "--sample-rat", "0.1"],
        ERR,
        &["unexpected argument '--sample-rat'"],
    ));
    c
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Runs one case; `Err` describes how it failed.
fn run(c: &Case) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let t = tmp.path().display().to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crowdout"));
    cmd.current_dir(tmp.path()).env_remove("CROWDOUT_FAKE_RUNNER").env_remove("CROWDOUT_SKIP_VERIFY");
    for s in &c.setup {
        match s {
            Setup::File(rel, bytes) => {
                let p = tmp.path().join(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, bytes).unwrap();
            }
            Setup::Dir(rel) => std::fs::create_dir_all(tmp.path().join(rel)).unwrap(),
            Setup::Fixture(name, edit) => {
                let fixtures = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/fixtures"));
                let dest = tmp.path().join("fx").join(name);
                copy_dir(&fixtures.join(name), &dest);
                edit(&dest);
                cmd.env("CROWDOUT_FIXTURES", tmp.path().join("fx"));
            }
        }
    }
    for (k, v) in &c.env {
        cmd.env(k, v.replace("{tmp}", &t));
    }
    let args: Vec<String> = c.args.iter().map(|a| a.replace("{tmp}", &t)).collect();
    let out = cmd.args(&args).output().map_err(|e| format!("cannot run crowdout: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let code = out.status.code();
    let mut problems = Vec::new();
    if stderr.contains("panicked") || code == Some(101) {
        problems.push("PANICKED".to_string());
    }
    if code != Some(c.code) {
        problems.push(format!("exit code {code:?}, expected {}", c.code));
    }
    for s in &c.stderr {
        if !stderr.contains(s) {
            problems.push(format!("stderr lacks {s:?}"));
        }
    }
    for s in &c.stdout {
        if !stdout.contains(s) {
            problems.push(format!("stdout lacks {s:?}"));
        }
    }
    if c.code != 0 && !stderr.contains("error") {
        problems.push("no `error` on stderr".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n    args: {}\n    stderr: {}",
            problems.join("; "),
            args.join(" "),
            stderr.trim_end().replace('\n', "\n            ")
        ))
    }
}

#[test]
fn every_bad_input_is_a_clear_error_never_a_panic() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(names.insert(c.name), "duplicate case name {}", c.name);
    }
    // A few workers: every case is its own process in its own temporary directory.
    let chunks: Vec<&[Case]> = cases.chunks(cases.len().div_ceil(4)).collect();
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|c| run(c).err().map(|e| format!("[{}] {e}", c.name)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// A sweep whose later cells fail keeps the rows already written intact, and a torn last line
/// (what an interrupted or short append leaves) is dropped on reopen, not misread.
#[test]
fn failed_appends_and_failed_cells_do_not_lose_written_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("spec.toml");
    std::fs::write(&spec, SPEC.replace("seed = [0]", "seed = [0, 1]")).unwrap();
    let out = tmp.path().join("out");
    let sweep = |fake: &str| {
        Command::new(env!("CARGO_BIN_EXE_crowdout"))
            .arg("sweep")
            .arg(&spec)
            .arg("--out")
            .arg(&out)
            .arg("--no-progress")
            .env("CROWDOUT_FAKE_RUNNER", fake)
            .output()
            .unwrap()
    };
    // Seed 1 fails: exit non-zero, the two seed-0 rows are written and good.
    let o = sweep("fail-seed:1");
    assert_eq!(o.status.code(), Some(ERR), "{}", String::from_utf8_lossy(&o.stderr));
    let results = out.join("results.csv");
    let before = std::fs::read(&results).unwrap();
    let rows = crowdout::sweep::store::read_results(&results).unwrap();
    assert_eq!(rows.iter().filter(|r| r.is_ok()).count(), 2);
    // Simulate an append cut short (full disk, kill): half a row, no newline.
    let half = &before[before.len() - 40..before.len() - 1];
    let mut torn = before.clone();
    torn.extend_from_slice(half);
    std::fs::write(&results, &torn).unwrap();
    // Rerun: the torn tail is dropped with a warning, good rows are kept byte for byte, the
    // failed cells are retried and now succeed.
    let o = sweep("1");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("torn last row") && !err.contains("panicked"), "{err}");
    let after = std::fs::read(&results).unwrap();
    assert_eq!(&after[..before.len()], &before[..], "rows already written changed");
    let rows = crowdout::sweep::store::read_results(&results).unwrap();
    assert_eq!(rows.iter().filter(|r| r.is_ok()).count(), 4);
}
