//! What every example program does the same way: logs that `RUST_LOG` turns on,
//! arguments with `--help` and an error that names a bad one, and errors printed as
//! sentences rather than debug dumps.

use std::error::Error;
use std::fmt::Display;
use std::process::ExitCode;
use std::str::FromStr;

/// An example's `main` result.
pub(crate) type Outcome = Result<(), Box<dyn Error>>;

/// Sends log lines to stderr, at the level `RUST_LOG` gives (`warn` if unset):
/// `RUST_LOG=debug` shows channels, connections and refusals as they happen.
pub(crate) fn logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints an error as a sentence, with its causes, and gives the exit code.
pub(crate) fn finish(program: &str, outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprint!("{program}: error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprint!(": {cause}");
                source = cause.source();
            }
            eprintln!();
            ExitCode::FAILURE
        }
    }
}

/// The positional arguments of an example, taken in order.
pub(crate) struct Args {
    program: &'static str,
    usage: &'static str,
    args: std::vec::IntoIter<String>,
}

impl Args {
    /// The arguments, with `--help` (or `-h`) answered by printing `usage` and
    /// exiting.
    pub(crate) fn parse(program: &'static str, usage: &'static str) -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.iter().any(|a| a == "--help" || a == "-h") {
            println!("usage: {}", usage_line(program, usage));
            std::process::exit(0);
        }
        Self {
            program,
            usage,
            args: args.into_iter(),
        }
    }

    /// The next argument, if given.
    #[allow(dead_code, reason = "examples without arguments do not call it")]
    pub(crate) fn next(&mut self) -> Option<String> {
        self.args.next()
    }

    /// The next argument parsed as a `T` named `what`, if given (`-` counts as not
    /// given).
    ///
    /// # Errors
    ///
    /// One that names the argument, its value and why it is not a `what`.
    #[allow(dead_code, reason = "examples without arguments do not call it")]
    pub(crate) fn next_parsed<T>(&mut self, what: &str) -> Result<Option<T>, Box<dyn Error>>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.args.next().filter(|a| a != "-") {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|e| {
                format!(
                    "{what} {text:?} is not valid ({e}); usage: {}",
                    usage_line(self.program, self.usage)
                )
                .into()
            }),
        }
    }

    /// Checks that no argument is left over.
    ///
    /// # Errors
    ///
    /// One that names the first extra argument.
    pub(crate) fn done(mut self) -> Result<(), Box<dyn Error>> {
        match self.args.next() {
            None => Ok(()),
            Some(extra) => Err(format!(
                "unexpected argument {extra:?}; usage: {}",
                usage_line(self.program, self.usage)
            )
            .into()),
        }
    }
}

/// `program` and its `usage`, as a usage line shows them.
fn usage_line(program: &str, usage: &str) -> String {
    if usage.is_empty() {
        program.to_owned()
    } else {
        format!("{program} {usage}")
    }
}
