//! Per-process-type settings an app owner sets beside the formation: health checks
//! (`slip healthchecks:set`), resource limits (`slip limits:set`) and autoscaling
//! (`slip autoscale:set`). Like the formation they live on the app, not on a release, so a
//! rollback keeps them; changing one rolls the current release out again with it.
//!
//! On Kubernetes they become probes, resource requests and limits, and a
//! HorizontalPodAutoscaler; the local runtime honours what it can (a readiness check's path,
//! a memory limit).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, MAX_COMMAND, MAX_PROCESSES_PER_TYPE, ProcessType};

/// The longest health check path.
pub const MAX_PROBE_PATH: usize = 1_024;
/// The most seconds between checks, or a check may take.
pub const MAX_PROBE_SECONDS: u32 = 3_600;
/// The most failed checks in a row before a process counts as unhealthy.
pub const MAX_FAILURE_THRESHOLD: u32 = 100;
/// The most memory one process may be given: 256 GiB.
pub const MAX_MEMORY: u64 = 256 << 30;
/// The most CPU one process may be given, in millicores: 64 cores.
pub const MAX_CPU_MILLIS: u32 = 64_000;
/// The highest CPU utilisation an autoscaler may aim at, in percent of the CPU request.
pub const MAX_CPU_PERCENT: u32 = 1_000;

/// Which health check: liveness restarts a process that fails it; readiness keeps traffic
/// (and a rollout) from a process until it passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Liveness,
    Readiness,
}

impl ProbeKind {
    pub fn parse(s: &str) -> Result<ProbeKind, Error> {
        match s {
            "liveness" => Ok(ProbeKind::Liveness),
            "readiness" => Ok(ProbeKind::Readiness),
            other => Err(Error::ProbeKind(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a health check does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Check {
    /// An HTTP GET of `path`, healthy on a 2xx or 3xx answer. Without a port, the process's
    /// `$PORT` (web processes have one).
    HttpGet { path: String, port: Option<u16> },
    /// A shell command run in the process's container, healthy when it exits 0.
    Exec { command: String },
}

impl Check {
    /// An HTTP check of `path`: an absolute path of printable ASCII without spaces.
    pub fn http_get(path: &str, port: Option<u16>) -> Result<Check, Error> {
        let ok = path.starts_with('/')
            && path.len() <= MAX_PROBE_PATH
            && path.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(Error::ProbePath(path.to_owned()));
        }
        if port == Some(0) {
            return Err(Error::ProbePort);
        }
        Ok(Check::HttpGet {
            path: path.to_owned(),
            port,
        })
    }

    /// A command check: one line of shell, at most [`MAX_COMMAND`] bytes.
    pub fn exec(command: &str) -> Result<Check, Error> {
        let command = command.trim();
        if command.is_empty()
            || command.len() > MAX_COMMAND
            || command.chars().any(|c| c.is_control())
        {
            return Err(Error::ProbeCommand { max: MAX_COMMAND });
        }
        Ok(Check::Exec {
            command: command.to_owned(),
        })
    }
}

/// A health check and how often, how patiently, it is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub check: Check,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
}

impl Probe {
    pub const DEFAULT_PERIOD: u32 = 10;
    pub const DEFAULT_TIMEOUT: u32 = 1;
    pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

    /// A probe with the given timings, each checked; `None` takes Kubernetes' default.
    pub fn new(
        check: Check,
        period_seconds: Option<u32>,
        timeout_seconds: Option<u32>,
        failure_threshold: Option<u32>,
    ) -> Result<Probe, Error> {
        let period_seconds = period_seconds.unwrap_or(Self::DEFAULT_PERIOD);
        let timeout_seconds = timeout_seconds.unwrap_or(Self::DEFAULT_TIMEOUT);
        let failure_threshold = failure_threshold.unwrap_or(Self::DEFAULT_FAILURE_THRESHOLD);
        for (what, value) in [("period", period_seconds), ("timeout", timeout_seconds)] {
            if !(1..=MAX_PROBE_SECONDS).contains(&value) {
                return Err(Error::ProbeSeconds {
                    what,
                    value,
                    max: MAX_PROBE_SECONDS,
                });
            }
        }
        if !(1..=MAX_FAILURE_THRESHOLD).contains(&failure_threshold) {
            return Err(Error::ProbeFailureThreshold {
                value: failure_threshold,
                max: MAX_FAILURE_THRESHOLD,
            });
        }
        Ok(Probe {
            check,
            period_seconds,
            timeout_seconds,
            failure_threshold,
        })
    }
}

/// An amount of memory in bytes, written as Kubernetes writes it (`512Mi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Memory(u64);

impl Memory {
    /// Parses `512M`, `512Mi`, `1G`, `1.5Gi`, `262144K` or a number of bytes. As on Heroku and
    /// Deis, `K`, `M` and `G` are binary units (`512M` is 512 MiB); `Ki`, `Mi` and `Gi` mean
    /// the same. At least 4 MiB, at most [`MAX_MEMORY`].
    pub fn parse(s: &str) -> Result<Memory, Error> {
        let bad = || Error::Memory(s.to_owned());
        let t = s.trim();
        let (number, unit) =
            t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
        let scale: u64 = match unit.trim_end_matches(['i', 'B']) {
            "" => 1,
            "K" | "k" => 1 << 10,
            "M" | "m" => 1 << 20,
            "G" | "g" => 1 << 30,
            _ => return Err(bad()),
        };
        if !matches!(unit.len(), 0..=2) {
            return Err(bad());
        }
        let bytes = decimal_times(number, scale).ok_or_else(bad)?;
        if !((4 << 20)..=MAX_MEMORY).contains(&bytes) {
            return Err(Error::MemoryRange(s.to_owned()));
        }
        Ok(Memory(bytes))
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Kubernetes' quantity: `512Mi`, `1Gi`, or bytes when not a whole number of KiB.
    pub fn quantity(self) -> String {
        let b = self.0;
        for (shift, unit) in [(30, "Gi"), (20, "Mi"), (10, "Ki")] {
            if b.is_multiple_of(1 << shift) {
                return format!("{}{unit}", b >> shift);
            }
        }
        b.to_string()
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quantity())
    }
}

/// An amount of CPU in millicores, written as Kubernetes writes it (`500m`, `2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cpu(u32);

impl Cpu {
    /// Parses `500m`, `0.5`, `2`. At least 1m, at most [`MAX_CPU_MILLIS`].
    pub fn parse(s: &str) -> Result<Cpu, Error> {
        let bad = || Error::Cpu(s.to_owned());
        let t = s.trim();
        let millis = match t.strip_suffix('m') {
            Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => {
                m.parse::<u64>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None => decimal_times(t, 1_000).ok_or_else(bad)?,
        };
        if !(1..=u64::from(MAX_CPU_MILLIS)).contains(&millis) {
            return Err(Error::CpuRange(s.to_owned()));
        }
        Ok(Cpu(millis as u32))
    }

    pub fn millis(self) -> u32 {
        self.0
    }

    /// Kubernetes' quantity: whole cores as `2`, else millicores as `500m`.
    pub fn quantity(self) -> String {
        if self.0.is_multiple_of(1_000) {
            (self.0 / 1_000).to_string()
        } else {
            format!("{}m", self.0)
        }
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quantity())
    }
}

/// `number × scale` for a decimal `number` (`1.5`), when it is whole; `None` if malformed or
/// too large.
fn decimal_times(number: &str, scale: u64) -> Option<u64> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 9 {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let mut total = whole.checked_mul(scale)?;
    if !fraction.is_empty() {
        let denominator = 10u64.pow(fraction.len() as u32);
        let numerator: u64 = fraction.parse().ok()?;
        let part = numerator.checked_mul(scale)?;
        if part % denominator != 0 {
            return None;
        }
        total = total.checked_add(part / denominator)?;
    }
    Some(total)
}

/// What each process may use: the request and the limit are the same, so a process gets
/// what it is promised and no more (Kubernetes' Guaranteed class when both are set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory: Option<Memory>,
    pub cpu: Option<Cpu>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.cpu.is_none()
    }
}

/// A HorizontalPodAutoscaler's bounds and target; while set, it decides the type's count and
/// the formation's count waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Autoscale {
    pub min: u32,
    pub max: u32,
    pub cpu_percent: u32,
}

impl Autoscale {
    /// `1 <= min <= max <= 100` processes, aiming at `1..=1000` percent of the CPU request.
    pub fn new(min: u32, max: u32, cpu_percent: u32) -> Result<Autoscale, Error> {
        if min == 0 || min > max || max > MAX_PROCESSES_PER_TYPE {
            return Err(Error::AutoscaleBounds {
                min,
                max,
                limit: MAX_PROCESSES_PER_TYPE,
            });
        }
        if !(1..=MAX_CPU_PERCENT).contains(&cpu_percent) {
            return Err(Error::AutoscaleTarget {
                value: cpu_percent,
                max: MAX_CPU_PERCENT,
            });
        }
        Ok(Autoscale {
            min,
            max,
            cpu_percent,
        })
    }
}

/// One process type's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Probe>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
}

impl TypeSettings {
    pub fn probe(&self, kind: ProbeKind) -> Option<&Probe> {
        match kind {
            ProbeKind::Liveness => self.liveness.as_ref(),
            ProbeKind::Readiness => self.readiness.as_ref(),
        }
    }

    pub fn set_probe(&mut self, kind: ProbeKind, probe: Option<Probe>) {
        match kind {
            ProbeKind::Liveness => self.liveness = probe,
            ProbeKind::Readiness => self.readiness = probe,
        }
    }

    pub fn is_empty(&self) -> bool {
        self == &TypeSettings::default()
    }
}

/// Every process type's settings. A type without any is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProcessSettings(BTreeMap<ProcessType, TypeSettings>);

impl ProcessSettings {
    pub fn get(&self, process_type: &ProcessType) -> Option<&TypeSettings> {
        self.0.get(process_type)
    }

    /// The settings of `process_type`, to change; a type left without any is dropped by
    /// [`ProcessSettings::tidy`].
    pub fn entry(&mut self, process_type: ProcessType) -> &mut TypeSettings {
        self.0.entry(process_type).or_default()
    }

    /// Drops types left without settings.
    pub fn tidy(&mut self) {
        self.0.retain(|_, s| !s.is_empty());
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ProcessType, &TypeSettings)> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(TypeSettings::is_empty)
    }
}

impl FromIterator<(ProcessType, TypeSettings)> for ProcessSettings {
    fn from_iter<I: IntoIterator<Item = (ProcessType, TypeSettings)>>(iter: I) -> Self {
        let mut settings = ProcessSettings(iter.into_iter().collect());
        settings.tidy();
        settings
    }
}

/// A change of one process type's settings, as `slip healthchecks:set`, `limits:set`,
/// `autoscale:set` and their `unset`s ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsChange {
    SetProbe(ProbeKind, Probe),
    /// Removes one health check, or both when `None`.
    UnsetProbe(Option<ProbeKind>),
    /// Sets the limits given; one not given stays as it was.
    SetLimits(Limits),
    UnsetLimits {
        memory: bool,
        cpu: bool,
    },
    SetAutoscale(Autoscale),
    UnsetAutoscale,
}

impl ProcessSettings {
    /// The settings after `change` to `process_type`, or why it is refused.
    ///
    /// `known` is the process types of the app's current build, when it has one: as for
    /// scaling ([`crate::Formation::scale`]), settings are set only for a type the build
    /// declares, or for any well-formed type before the first build. Removing is allowed for
    /// any type, so the settings of a type a later build dropped can be cleared. The
    /// `release` process takes none. An autoscaler aims at a share of the CPU request, so it
    /// needs a CPU limit, and that limit stays while the autoscaler does. An HTTP check
    /// without a port goes to `$PORT`, which only web processes have.
    pub fn change(
        &self,
        process_type: &ProcessType,
        change: &SettingsChange,
        known: Option<&[ProcessType]>,
    ) -> Result<ProcessSettings, Error> {
        if process_type.is_one_off() {
            return Err(Error::SettingsOneOff {
                process: process_type.to_string(),
                when: process_type.one_off_when(),
            });
        }
        let sets = matches!(
            change,
            SettingsChange::SetProbe(..)
                | SettingsChange::SetLimits(_)
                | SettingsChange::SetAutoscale(_)
        );
        if sets
            && let Some(known) = known
            && !known.contains(process_type)
        {
            return Err(crate::formation::unknown_type(process_type, known));
        }
        let mut next = self.clone();
        let settings = next.entry(process_type.clone());
        let process = || process_type.to_string();
        match change {
            SettingsChange::SetProbe(kind, probe) => {
                if let Check::HttpGet { port: None, .. } = probe.check
                    && process_type.as_str() != ProcessType::WEB
                {
                    return Err(Error::ProbeNeedsPort { process: process() });
                }
                settings.set_probe(*kind, Some(probe.clone()));
            }
            SettingsChange::UnsetProbe(Some(kind)) => settings.set_probe(*kind, None),
            SettingsChange::UnsetProbe(None) => {
                settings.liveness = None;
                settings.readiness = None;
            }
            SettingsChange::SetLimits(limits) => {
                if limits.is_empty() {
                    return Err(Error::LimitsEmpty);
                }
                settings.limits.memory = limits.memory.or(settings.limits.memory);
                settings.limits.cpu = limits.cpu.or(settings.limits.cpu);
            }
            SettingsChange::UnsetLimits { memory, cpu } => {
                if *memory {
                    settings.limits.memory = None;
                }
                if *cpu {
                    if settings.autoscale.is_some() && settings.limits.cpu.is_some() {
                        return Err(Error::AutoscaleKeepsCpu { process: process() });
                    }
                    settings.limits.cpu = None;
                }
            }
            SettingsChange::SetAutoscale(autoscale) => {
                if settings.limits.cpu.is_none() {
                    return Err(Error::AutoscaleNeedsCpu { process: process() });
                }
                settings.autoscale = Some(*autoscale);
            }
            SettingsChange::UnsetAutoscale => settings.autoscale = None,
        }
        next.tidy();
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_takes_binary_units_either_way() {
        for (input, bytes, quantity) in [
            ("512M", 512 << 20, "512Mi"),
            ("512Mi", 512 << 20, "512Mi"),
            ("1G", 1 << 30, "1Gi"),
            ("1.5Gi", 3 << 29, "1536Mi"),
            ("65536K", 64 << 20, "64Mi"),
            ("8388608", 8 << 20, "8Mi"),
        ] {
            let m = Memory::parse(input).unwrap();
            assert_eq!(
                (m.bytes(), m.quantity().as_str()),
                (bytes, quantity),
                "{input}"
            );
        }
    }

    #[test]
    fn memory_refuses_nonsense_and_extremes() {
        for input in [
            "",
            "M",
            "12X",
            "1.2.3G",
            "-5M",
            "1MiB2",
            "1T",
            "0.0000000001G",
        ] {
            assert!(
                matches!(Memory::parse(input), Err(Error::Memory(_))),
                "{input}"
            );
        }
        for input in ["1M", "0", "300G"] {
            assert!(
                matches!(Memory::parse(input), Err(Error::MemoryRange(_))),
                "{input}"
            );
        }
    }

    #[test]
    fn cpu_takes_millicores_and_cores() {
        for (input, millis, quantity) in [
            ("500m", 500, "500m"),
            ("0.5", 500, "500m"),
            ("2", 2_000, "2"),
            ("1.25", 1_250, "1250m"),
        ] {
            let c = Cpu::parse(input).unwrap();
            assert_eq!(
                (c.millis(), c.quantity().as_str()),
                (millis, quantity),
                "{input}"
            );
        }
        for input in ["", "m", "1.5m", "abc", "0.0001"] {
            assert!(matches!(Cpu::parse(input), Err(Error::Cpu(_))), "{input}");
        }
        for input in ["0m", "0", "65"] {
            assert!(
                matches!(Cpu::parse(input), Err(Error::CpuRange(_))),
                "{input}"
            );
        }
    }

    #[test]
    fn checks_refuse_what_could_escape_the_probe() {
        assert!(Check::http_get("/healthz", None).is_ok());
        for path in ["healthz", "/a b", "/\n", ""] {
            assert!(Check::http_get(path, None).is_err(), "{path:?}");
        }
        assert!(Check::http_get("/", Some(0)).is_err());
        assert!(Check::exec("test -f /tmp/ready").is_ok());
        assert!(Check::exec("a\nb").is_err());
        assert!(Check::exec(&"x".repeat(MAX_COMMAND + 1)).is_err());
    }

    #[test]
    fn probe_and_autoscale_bounds() {
        let check = Check::http_get("/", None).unwrap();
        assert!(Probe::new(check.clone(), Some(0), None, None).is_err());
        assert!(Probe::new(check.clone(), None, Some(3_601), None).is_err());
        assert!(Probe::new(check.clone(), None, None, Some(0)).is_err());
        let probe = Probe::new(check, None, None, None).unwrap();
        assert_eq!(
            (
                probe.period_seconds,
                probe.timeout_seconds,
                probe.failure_threshold
            ),
            (10, 1, 3)
        );
        assert!(Autoscale::new(2, 10, 70).is_ok());
        assert!(Autoscale::new(0, 10, 70).is_err());
        assert!(Autoscale::new(5, 4, 70).is_err());
        assert!(Autoscale::new(1, 101, 70).is_err());
        assert!(Autoscale::new(1, 2, 0).is_err());
    }

    #[test]
    fn settings_round_trip_through_json_and_drop_empty_types() {
        let web = ProcessType::parse("web").unwrap();
        let mut settings = ProcessSettings::default();
        settings.entry(web.clone()).limits.memory = Some(Memory::parse("256M").unwrap());
        settings.entry(ProcessType::parse("worker").unwrap());
        settings.tidy();
        let json = serde_json::to_string(&settings).unwrap();
        assert_eq!(
            json,
            r#"{"web":{"limits":{"memory":268435456,"cpu":null}}}"#
        );
        let back: ProcessSettings = serde_json::from_str(&json).unwrap();
        assert_eq!(back, settings);
    }

    #[test]
    fn changes_keep_the_rules() {
        let t = |name: &str| ProcessType::parse(name).unwrap();
        let known = [t("web"), t("worker"), t("release")];
        let known = Some(&known[..]);
        let cpu = |c: &str| Limits {
            memory: None,
            cpu: Some(Cpu::parse(c).unwrap()),
        };
        let scale = SettingsChange::SetAutoscale(Autoscale::new(2, 10, 70).unwrap());
        let http = |port| {
            let probe = Probe::new(Check::http_get("/up", port).unwrap(), None, None, None);
            SettingsChange::SetProbe(ProbeKind::Readiness, probe.unwrap())
        };
        let none = ProcessSettings::default();
        let refused = |s: &ProcessSettings, name: &str, change: &SettingsChange| {
            s.change(&t(name), change, known).unwrap_err().to_string()
        };

        assert_eq!(
            refused(&none, "web", &scale),
            "autoscale needs a CPU limit on web: run `slip limits:set web --cpu 500m` first"
        );
        let limited = none
            .change(&t("web"), &SettingsChange::SetLimits(cpu("500m")), known)
            .unwrap();
        let scaled = limited.change(&t("web"), &scale, known).unwrap();
        let unset_cpu = SettingsChange::UnsetLimits {
            memory: false,
            cpu: true,
        };
        assert_eq!(
            refused(&scaled, "web", &unset_cpu),
            "web is autoscaled on its CPU limit: run `slip autoscale:unset web` first"
        );
        let memory = Limits {
            memory: Some(Memory::parse("1G").unwrap()),
            cpu: None,
        };
        let both = scaled
            .change(&t("web"), &SettingsChange::SetLimits(memory), known)
            .unwrap();
        let web = both.get(&t("web")).unwrap();
        assert_eq!(
            (
                web.limits.memory.unwrap().quantity(),
                web.limits.cpu.unwrap().quantity()
            ),
            ("1Gi".to_owned(), "500m".to_owned()),
            "a limit not given stays"
        );
        let unscaled = both
            .change(&t("web"), &SettingsChange::UnsetAutoscale, known)
            .unwrap();
        assert!(unscaled.change(&t("web"), &unset_cpu, known).is_ok());

        assert_eq!(
            refused(&none, "clock", &SettingsChange::SetLimits(cpu("1"))),
            "the app has no process type \"clock\"; its processes are: web, worker"
        );
        assert_eq!(
            refused(&none, "release", &SettingsChange::SetLimits(cpu("1"))),
            "the release process runs once per release and takes no health checks, limits or autoscaling"
        );
        assert!(matches!(
            none.change(
                &t("web"),
                &SettingsChange::SetLimits(Limits::default()),
                known
            ),
            Err(Error::LimitsEmpty)
        ));
        assert!(
            none.change(&t("clock"), &SettingsChange::UnsetAutoscale, known)
                .unwrap()
                .is_empty(),
            "a type the build dropped can be cleared"
        );
        assert!(
            none.change(&t("clock"), &scale, None).is_err(),
            "no CPU limit"
        );
        assert!(
            none.change(&t("clock"), &SettingsChange::SetLimits(cpu("1")), None)
                .is_ok(),
            "before the first build any type"
        );

        assert_eq!(
            refused(&none, "worker", &http(None)),
            "worker processes have no $PORT: give the health check a port, such as --port 8080"
        );
        let checked = none.change(&t("worker"), &http(Some(9000)), known).unwrap();
        let checked = checked.change(&t("web"), &http(None), known).unwrap();
        let cleared = checked
            .change(&t("worker"), &SettingsChange::UnsetProbe(None), known)
            .unwrap();
        assert!(
            cleared.get(&t("worker")).is_none(),
            "a type left bare is dropped"
        );
        assert!(cleared.get(&t("web")).unwrap().readiness.is_some());
    }
}
