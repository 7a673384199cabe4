//! A Dockerfile read into what the platform runs: its stages and their steps, each with its
//! line number. Parsing is `parse-dockerfile`'s; this module keeps only what the platform
//! supports and refuses the rest, one line naming the line and the instruction or flag. Values
//! stay as written: they are expanded when the step runs, with the ARGs and ENV then in scope.

use parse_dockerfile::{Command as Parsed, Flag, Instruction, Source, UnescapedString};

/// The most instructions a Dockerfile may have; more is no Dockerfile anyone writes by hand.
pub(crate) const MAX_INSTRUCTIONS: usize = 1_000;

/// A Dockerfile, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dockerfile {
    /// ARGs before the first FROM: usable in FROM lines, and in a stage that declares them.
    pub(crate) global_args: Vec<Step>,
    pub(crate) stages: Vec<Stage>,
}

/// One `FROM` and the steps up to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stage {
    pub(crate) line: usize,
    /// The image as written: `run-image:base`, an earlier stage's name, `scratch`.
    pub(crate) base: String,
    /// Its `AS` name, lowercase (stage names are case-insensitive).
    pub(crate) name: Option<String>,
    /// The FROM line as written, for the log.
    pub(crate) text: String,
    pub(crate) steps: Vec<Step>,
}

/// One instruction after a FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) line: usize,
    /// The instruction as written (its first line), for the log.
    pub(crate) text: String,
    pub(crate) kind: Kind,
}

/// What a step does. Strings are as written, expanded when the step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Run(Command),
    /// COPY, or ADD of local files.
    Copy {
        /// `--from=<stage name or index>`.
        from: Option<String>,
        sources: Vec<String>,
        dest: String,
        add: bool,
    },
    /// `KEY=value …`, or the old `KEY value` form as one pair.
    Env(Assignments),
    Arg(String),
    Workdir(String),
    User(String),
    Expose(String),
    Cmd(Command),
    Entrypoint(Command),
    Label(Assignments),
}

/// `K=v K2="v 2"` as written, or the legacy `K value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Assignments {
    Pairs(String),
    Legacy { key: String, value: String },
}

/// The shell form (run with `/bin/sh -c`) or the exec form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Shell(String),
    Exec(Vec<String>),
}

/// Reads `text`, refusing what the platform does not support with
/// `Dockerfile line N: … is not supported; …`.
pub(crate) fn parse(text: &str) -> Result<Dockerfile, String> {
    let parsed = parse_dockerfile::parse(text).map_err(|e| match e.line() {
        0 => format!("Dockerfile: {}", one_line(&format!("{e:#}"))),
        line => format!("Dockerfile line {line}: {}", one_line(&format!("{e:#}"))),
    })?;
    if let Some(escape) = &parsed.parser_directives.escape
        && escape.value.value != '\\'
    {
        return Err(format!(
            "Dockerfile line {}: the escape directive {:?} is not supported; remove it and escape with \\",
            line_of(text, escape.value.span.start),
            escape.value.value
        ));
    }
    if parsed.instructions.len() > MAX_INSTRUCTIONS {
        return Err(format!(
            "the Dockerfile has more than {MAX_INSTRUCTIONS} instructions; make it shorter"
        ));
    }
    let mut file = Dockerfile {
        global_args: Vec::new(),
        stages: Vec::new(),
    };
    let starts: Vec<usize> = parsed.instructions.iter().map(|i| start_of(i)).collect();
    for (index, instruction) in parsed.instructions.iter().enumerate() {
        let line = line_of(text, starts[index]);
        let end = starts.get(index + 1).copied().unwrap_or(text.len());
        let written = first_line(&text[starts[index]..end]);
        let refuse = |what: &str, hint: &str| {
            Err(format!(
                "Dockerfile line {line}: {what} is not supported; {hint}"
            ))
        };
        let kind = match instruction {
            Instruction::From(from) => {
                no_flags(line, "FROM", &from.options)?;
                file.stages.push(Stage {
                    line,
                    base: from.image.value.to_string(),
                    name: from.as_.as_ref().map(|(_, n)| n.value.to_lowercase()),
                    text: written,
                    steps: Vec::new(),
                });
                continue;
            }
            Instruction::Arg(arg) => Kind::Arg(arg.arguments.value.to_string()),
            Instruction::Run(run) => {
                if let Some(flag) = run.options.first() {
                    return refuse(&format!("RUN --{}", flag.name.value), "remove the flag");
                }
                if !run.here_docs.is_empty() {
                    return refuse(
                        "RUN with a here-document",
                        "put the script in a file of the app and COPY it",
                    );
                }
                Kind::Run(command(&run.arguments))
            }
            Instruction::Copy(copy) => {
                let mut from = None;
                for flag in &copy.options {
                    match &*flag.name.value {
                        "from" => from = flag.value.as_ref().map(|v| v.value.to_string()),
                        name => {
                            return refuse(
                                &format!("COPY --{name}"),
                                "remove the flag (files are copied as root, with their modes)",
                            );
                        }
                    }
                }
                Kind::Copy {
                    from,
                    sources: sources(line, "COPY", &copy.src)?,
                    dest: copy.dest.value.to_string(),
                    add: false,
                }
            }
            Instruction::Add(add) => {
                if let Some(flag) = add.options.first() {
                    return refuse(&format!("ADD --{}", flag.name.value), "remove the flag");
                }
                let sources = sources(line, "ADD", &add.src)?;
                if let Some(url) = sources.iter().find(|s| is_remote(s)) {
                    return refuse(
                        &format!("ADD from a URL ({url})"),
                        "add the file to the app, or download it in a RUN step",
                    );
                }
                Kind::Copy {
                    from: None,
                    sources,
                    dest: add.dest.value.to_string(),
                    add: true,
                }
            }
            Instruction::Env(env) => Kind::Env(assignments(&env.arguments.value)),
            Instruction::Label(label) => Kind::Label(assignments(&label.arguments.value)),
            Instruction::Workdir(dir) => Kind::Workdir(dir.arguments.value.to_string()),
            Instruction::User(user) => Kind::User(user.arguments.value.to_string()),
            Instruction::Expose(expose) => Kind::Expose(
                expose
                    .arguments
                    .iter()
                    .map(|p| p.value.as_ref())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Instruction::Cmd(cmd) => Kind::Cmd(command(&cmd.arguments)),
            Instruction::Entrypoint(entrypoint) => Kind::Entrypoint(command(&entrypoint.arguments)),
            Instruction::Healthcheck(_) => {
                return refuse(
                    "HEALTHCHECK",
                    "remove it (the platform checks that the web process answers on $PORT)",
                );
            }
            Instruction::Volume(_) => {
                return refuse(
                    "VOLUME",
                    "remove it (an app's file system does not outlive its process)",
                );
            }
            Instruction::Shell(_) => {
                return refuse("SHELL", "remove it and call the shell you want in RUN");
            }
            Instruction::Onbuild(_) => return refuse("ONBUILD", "remove it"),
            Instruction::Stopsignal(_) => {
                return refuse(
                    "STOPSIGNAL",
                    "remove it (processes get SIGTERM, then SIGKILL)",
                );
            }
            Instruction::Maintainer(_) => {
                return refuse("MAINTAINER", "use LABEL maintainer=… instead");
            }
            _ => return refuse("this instruction", "remove it"),
        };
        let step = Step {
            line,
            text: written,
            kind,
        };
        match file.stages.last_mut() {
            Some(stage) => stage.steps.push(step),
            None => file.global_args.push(step),
        }
    }
    Ok(file)
}

/// Where an instruction starts in the text: its keyword.
fn start_of(instruction: &Instruction<'_>) -> usize {
    match instruction {
        Instruction::Add(i) => i.add.span.start,
        Instruction::Arg(i) => i.arg.span.start,
        Instruction::Cmd(i) => i.cmd.span.start,
        Instruction::Copy(i) => i.copy.span.start,
        Instruction::Entrypoint(i) => i.entrypoint.span.start,
        Instruction::Env(i) => i.env.span.start,
        Instruction::Expose(i) => i.expose.span.start,
        Instruction::From(i) => i.from.span.start,
        Instruction::Healthcheck(i) => i.healthcheck.span.start,
        Instruction::Label(i) => i.label.span.start,
        Instruction::Maintainer(i) => i.maintainer.span.start,
        Instruction::Onbuild(i) => i.onbuild.span.start,
        Instruction::Run(i) => i.run.span.start,
        Instruction::Shell(i) => i.shell.span.start,
        Instruction::Stopsignal(i) => i.stopsignal.span.start,
        Instruction::User(i) => i.user.span.start,
        Instruction::Volume(i) => i.volume.span.start,
        Instruction::Workdir(i) => i.workdir.span.start,
        _ => 0,
    }
}

/// The 1-based line of byte `at`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The first line of an instruction's text, shortened for the log.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    let line = line.strip_suffix('\\').unwrap_or(line).trim_end();
    match line.char_indices().nth(100) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_owned(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn no_flags(line: usize, what: &str, flags: &[Flag<'_>]) -> Result<(), String> {
    match flags.first() {
        Some(flag) => Err(format!(
            "Dockerfile line {line}: {what} --{} is not supported; remove the flag",
            flag.name.value
        )),
        None => Ok(()),
    }
}

fn command(parsed: &Parsed<'_>) -> Command {
    match parsed {
        Parsed::Exec(args) => {
            Command::Exec(args.value.iter().map(|a| a.value.to_string()).collect())
        }
        Parsed::Shell(text) => Command::Shell(text.value.to_owned()),
        // A form a later parser may add: nothing to run.
        _ => Command::Exec(Vec::new()),
    }
}

fn sources(line: usize, what: &str, src: &[Source<'_>]) -> Result<Vec<String>, String> {
    src.iter()
        .map(|s| match s {
            Source::Path(UnescapedString { value, .. }) => Ok(value.to_string()),
            _ => Err(format!(
                "Dockerfile line {line}: {what} of a here-document is not supported; put the text in a file of the app"
            )),
        })
        .collect()
}

/// A source ADD would fetch rather than read from the app.
fn is_remote(source: &str) -> bool {
    source.contains("://") || source.starts_with("git@")
}

/// `K=v …`, or the legacy `K value` when the first word has no `=`.
fn assignments(text: &str) -> Assignments {
    let text = text.trim();
    let first = text.split_whitespace().next().unwrap_or_default();
    if first.contains('=') {
        return Assignments::Pairs(text.to_owned());
    }
    Assignments::Legacy {
        key: first.to_owned(),
        value: text[first.len()..].trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_stage_dockerfile_is_read_with_lines() {
        let file = parse(
            "# syntax=docker/dockerfile:1\nARG BASE=run-image:base\nFROM $BASE AS Build\nWORKDIR /src\nCOPY . .\nRUN make \\\n  all\n\nFROM run-image:base\nCOPY --from=build /src/out /app/\nENV A=1 B=\"two words\"\nENV LEGACY some value\nEXPOSE 8080/tcp 9090\nUSER nobody\nLABEL a=b\nARG X\nENTRYPOINT [\"/app/run\"]\nCMD --port 80\n",
        )
        .unwrap();
        assert_eq!(file.global_args.len(), 1);
        assert_eq!(
            file.global_args[0].kind,
            Kind::Arg("BASE=run-image:base".into())
        );
        assert_eq!(file.stages.len(), 2);
        let (build, run) = (&file.stages[0], &file.stages[1]);
        assert_eq!((build.line, build.base.as_str()), (3, "$BASE"));
        assert_eq!(build.name.as_deref(), Some("build"));
        assert_eq!(build.steps[2].line, 6);
        assert_eq!(build.steps[2].text, "RUN make");
        assert!(
            matches!(&build.steps[2].kind, Kind::Run(Command::Shell(s)) if s.contains("make") && s.contains("all"))
        );
        assert_eq!(
            run.steps[0].kind,
            Kind::Copy {
                from: Some("build".into()),
                sources: vec!["/src/out".into()],
                dest: "/app/".into(),
                add: false
            }
        );
        assert_eq!(
            run.steps[1].kind,
            Kind::Env(Assignments::Pairs("A=1 B=\"two words\"".into()))
        );
        assert_eq!(
            run.steps[2].kind,
            Kind::Env(Assignments::Legacy {
                key: "LEGACY".into(),
                value: "some value".into()
            })
        );
        assert_eq!(run.steps[3].kind, Kind::Expose("8080/tcp 9090".into()));
        assert_eq!(
            run.steps[7].kind,
            Kind::Entrypoint(Command::Exec(vec!["/app/run".into()]))
        );
        assert_eq!(
            run.steps[8].kind,
            Kind::Cmd(Command::Shell("--port 80".into()))
        );
    }

    #[test]
    fn what_is_not_supported_is_refused_with_its_line() {
        let cases = [
            (
                "FROM scratch\nHEALTHCHECK CMD true\n",
                "Dockerfile line 2: HEALTHCHECK is not supported; ",
            ),
            (
                "FROM scratch\n\n\nVOLUME /data\n",
                "Dockerfile line 4: VOLUME is not supported; ",
            ),
            (
                "FROM scratch\nSHELL [\"/bin/bash\", \"-c\"]\n",
                "Dockerfile line 2: SHELL is not supported; ",
            ),
            (
                "FROM scratch\nONBUILD RUN x\n",
                "Dockerfile line 2: ONBUILD is not supported; ",
            ),
            (
                "FROM scratch\nSTOPSIGNAL SIGINT\n",
                "Dockerfile line 2: STOPSIGNAL is not supported; ",
            ),
            (
                "FROM scratch\nMAINTAINER me\n",
                "Dockerfile line 2: MAINTAINER is not supported; ",
            ),
            (
                "FROM scratch\nRUN --mount=type=cache,target=/x make\n",
                "Dockerfile line 2: RUN --mount is not supported; ",
            ),
            (
                "FROM scratch\nCOPY --chown=1:1 a b\n",
                "Dockerfile line 2: COPY --chown is not supported; ",
            ),
            (
                "FROM scratch\nCOPY --chmod=755 a b\n",
                "Dockerfile line 2: COPY --chmod is not supported; ",
            ),
            (
                "FROM scratch\nADD https://example.com/x.tgz /x\n",
                "Dockerfile line 2: ADD from a URL (https://example.com/x.tgz) is not supported; ",
            ),
            (
                "FROM scratch\nADD --checksum=sha256:00 a b\n",
                "Dockerfile line 2: ADD --checksum is not supported; ",
            ),
            (
                "FROM --platform=linux/arm64 scratch\n",
                "Dockerfile line 1: FROM --platform is not supported; ",
            ),
            (
                "FROM scratch\nRUN <<EOF\necho hi\nEOF\n",
                "Dockerfile line 2: RUN with a here-document is not supported; ",
            ),
            (
                "# escape=`\nFROM scratch\n",
                "Dockerfile line 1: the escape directive '`' is not supported; ",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.starts_with(expected), "{text:?}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn a_malformed_dockerfile_is_one_line_with_its_line() {
        let error = parse("FROM scratch\nRUN true\nCOPY onlyone\n").unwrap_err();
        assert!(error.starts_with("Dockerfile line 3: "), "{error}");
        assert!(!error.contains('\n'), "{error}");
        let error = parse("RUN true\n").unwrap_err();
        assert!(error.starts_with("Dockerfile line 1: "), "{error}");
    }
}
