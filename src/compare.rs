//! The reader's own comparison of every tier: measurements recorded by the
//! labs (in the workspace state) turned into one table, with each tier's cost
//! relative to bare metal; and `advise`, the field guide's questions answered
//! with those numbers.

use serde::Serialize;

use crate::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Better {
    Lower,
    Higher,
}

/// How a number is computed from recorded measurements (`<step>.<fact>` keys).
#[derive(Debug, Clone, Copy)]
enum Formula {
    /// num / den × scale
    Ratio(&'static str, &'static str, f64),
    /// A recorded value × scale
    Value(&'static str, f64),
    /// A ratio to bare metal measured directly (e.g. an emulation slowdown).
    Relative(&'static str),
}

struct Source {
    tier: &'static str,
    lab: &'static str,
    formula: Formula,
}

struct Metric {
    id: &'static str,
    title: &'static str,
    unit: &'static str,
    better: Better,
    sources: &'static [Source],
}

const BARE: &str = "bare metal";

const METRICS: &[Metric] = &[
    Metric {
        id: "syscall",
        title: "System call round trip",
        unit: "ns/call",
        better: Better::Lower,
        sources: &[
            Source {
                tier: BARE,
                lab: "01-bare-metal",
                formula: Formula::Ratio("syscall.result.syscall_us", "syscall.result.syscall_count", 1000.0),
            },
            Source {
                tier: "User-Mode-Linux",
                lab: "07-uml",
                formula: Formula::Ratio("boot.guest.syscall_us", "boot.guest.syscall_count", 1000.0),
            },
            // The guest's round trip to its VMM, which the student's VMM timed.
            Source {
                tier: "hardware-assisted (KVM exit to the VMM)",
                lab: "10-kvm",
                formula: Formula::Value("exit-cost.result.observed_ns_per_exit", 1.0),
            },
        ],
    },
    Metric {
        id: "cpu",
        title: "Shell loop (CPU)",
        unit: "ns/iteration",
        better: Better::Lower,
        sources: &[
            Source {
                tier: BARE,
                lab: "01-bare-metal",
                formula: Formula::Ratio("cpu.result.cpu_us", "cpu.result.cpu_iterations", 1000.0),
            },
            Source {
                tier: "software emulation (qemu-user)",
                lab: "09-software-emulation",
                formula: Formula::Relative("cross.result.slowdown"),
            },
            Source {
                tier: "software emulation (TCG guest)",
                lab: "10-kvm",
                formula: Formula::Ratio(
                    "tcg-baseline.guest.measure.cpu_us",
                    "tcg-baseline.guest.measure.cpu_iterations",
                    1000.0,
                ),
            },
            Source {
                tier: "hardware-assisted (KVM)",
                lab: "10-kvm",
                formula: Formula::Ratio(
                    "kvm-boot.guest.measure.cpu_us",
                    "kvm-boot.guest.measure.cpu_iterations",
                    1000.0,
                ),
            },
        ],
    },
    Metric {
        id: "io",
        title: "Disk writes with fsync",
        unit: "MB/s",
        better: Better::Higher,
        sources: &[
            Source {
                tier: BARE,
                lab: "01-bare-metal",
                formula: Formula::Ratio("io.result.io_bytes", "io.result.io_us", 1.0),
            },
            Source {
                tier: "User-Mode-Linux",
                lab: "07-uml",
                formula: Formula::Ratio("boot.guest.io_bytes", "boot.guest.io_us", 1.0),
            },
        ],
    },
    Metric {
        id: "start",
        title: "Start or boot time",
        unit: "ms",
        better: Better::Lower,
        sources: &[
            Source {
                tier: "containers",
                lab: "06-density",
                formula: Formula::Value("containers.density.container_start_ms", 1.0),
            },
            Source { tier: "User-Mode-Linux", lab: "07-uml", formula: Formula::Value("boot.boot.ms", 1.0) },
            Source {
                tier: "software emulation (TCG guest)",
                lab: "09-software-emulation",
                formula: Formula::Value("boot.boot.ms", 1.0),
            },
            Source { tier: "hardware-assisted (KVM)", lab: "10-kvm", formula: Formula::Value("kvm-boot.boot.ms", 1.0) },
            Source {
                tier: "paravirtualization (Xen PV dom0)",
                lab: "08-xen",
                formula: Formula::Value("boot.boot.ms", 1.0),
            },
        ],
    },
    Metric {
        id: "pvdisk",
        title: "Guest disk writes",
        unit: "KiB/s",
        better: Better::Higher,
        sources: &[
            Source {
                tier: "emulated devices (IDE)",
                lab: "11-pv-drivers",
                formula: Formula::Value("emulated.guest.measure.disk_write_kib_s", 1.0),
            },
            Source {
                tier: "paravirtual devices (virtio-blk)",
                lab: "11-pv-drivers",
                formula: Formula::Value("virtio.guest.measure.disk_write_kib_s", 1.0),
            },
        ],
    },
    Metric {
        id: "pvnet",
        title: "Guest to host bytes",
        unit: "Mbit/s",
        better: Better::Higher,
        sources: &[
            Source {
                tier: "emulated devices",
                lab: "11-pv-drivers",
                formula: Formula::Value("emulated.sink.mbit_s", 1.0),
            },
            Source {
                tier: "paravirtual devices (virtio-net)",
                lab: "11-pv-drivers",
                formula: Formula::Value("virtio.sink.mbit_s", 1.0),
            },
        ],
    },
    Metric {
        id: "pvdisk_accesses",
        title: "Disk register accesses per MiB (runner's count)",
        unit: "accesses",
        better: Better::Lower,
        sources: &[
            Source {
                tier: "emulated devices (IDE)",
                lab: "11-pv-drivers",
                formula: Formula::Value("emulated.devcount.disk_per_mib", 1.0),
            },
            Source {
                tier: "paravirtual devices (virtio-blk)",
                lab: "11-pv-drivers",
                formula: Formula::Value("virtio.devcount.disk_per_mib", 1.0),
            },
        ],
    },
    Metric {
        id: "pvnet_accesses",
        title: "NIC register accesses per packet sent (runner's count)",
        unit: "accesses",
        better: Better::Lower,
        sources: &[
            Source {
                tier: "emulated devices",
                lab: "11-pv-drivers",
                formula: Formula::Value("emulated.devcount.net_tx_per_packet", 1.0),
            },
            Source {
                tier: "paravirtual devices (virtio-net)",
                lab: "11-pv-drivers",
                formula: Formula::Value("virtio.devcount.net_tx_per_packet", 1.0),
            },
        ],
    },
    Metric {
        id: "memory",
        title: "Memory per instance",
        unit: "KiB",
        better: Better::Lower,
        sources: &[
            Source {
                tier: "containers",
                lab: "06-density",
                formula: Formula::Value("containers.density.container_kib", 1.0),
            },
            Source { tier: "User-Mode-Linux", lab: "06-density", formula: Formula::Value("uml.density.uml_kib", 1.0) },
            // A QEMU process's proportional memory (PSS), alone and beside an identical guest KSM merged.
            Source {
                tier: "software emulation (TCG guest)",
                lab: "06-density",
                formula: Formula::Value("ksm.density.vm_kib", 1.0),
            },
            Source {
                tier: "software emulation (TCG + KSM)",
                lab: "06-density",
                formula: Formula::Value("ksm.density.vm_ksm_kib", 1.0),
            },
        ],
    },
    Metric {
        id: "partition",
        title: "Pinned work beside a busy neighbour",
        unit: "× alone",
        better: Better::Lower,
        sources: &[Source {
            tier: "hardware partitioning",
            lab: "02-partitioning",
            formula: Formula::Ratio("isolation.result.neighbour_us", "isolation.result.alone_us", 1.0),
        }],
    },
];

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) metric: String,
    pub(crate) title: String,
    pub(crate) tier: String,
    pub(crate) unit: String,
    pub(crate) better: Better,
    pub(crate) value: Option<f64>,
    /// How many times costlier than bare metal (1.0 = same; > 1 = slower/bigger).
    pub(crate) vs_bare_metal: Option<f64>,
    pub(crate) lab: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Comparison {
    pub(crate) host: String,
    pub(crate) rows: Vec<Row>,
    /// One line per number that is missing, naming the lab that produces it.
    pub(crate) missing: Vec<String>,
}

impl Comparison {
    pub(crate) fn measured(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.value.is_some())
    }

    #[cfg(test)]
    pub(crate) fn get(&self, metric: &str, tier_prefix: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.metric == metric && r.tier.starts_with(tier_prefix)).and_then(|r| r.value)
    }
}

fn lookup(state: &State, lab: &str, key: &str) -> Option<f64> {
    state.labs.get(lab)?.measurements.get(key)?.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `host (cpu model)`, for titles.
pub(crate) fn host_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).trim().to_string()))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{host} ({cpu}, {cores} cores)")
}

pub(crate) fn compare(state: &State) -> Comparison {
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for m in METRICS {
        let base = m.sources.iter().find(|s| s.tier == BARE).and_then(|s| value(state, s, None));
        for s in m.sources {
            let v = value(state, s, base);
            let vs = match (s.formula, v, base) {
                (Formula::Relative(_), Some(_), _) => state_relative(state, s),
                (_, Some(v), Some(b)) if b > 0.0 && v > 0.0 => Some(match m.better {
                    Better::Lower => v / b,
                    Better::Higher => b / v,
                }),
                _ => None,
            };
            if v.is_none() {
                missing.push(match skipped_here(state, s) {
                    Some(why) => format!("{} — {}: not measurable on this machine: {why}", m.title, s.tier),
                    None => format!("{} — {}: run `vlab check {}`", m.title, s.tier, s.lab),
                });
            }
            rows.push(Row {
                metric: m.id.into(),
                title: m.title.into(),
                tier: s.tier.into(),
                unit: m.unit.into(),
                better: m.better,
                value: v,
                vs_bare_metal: vs,
                lab: s.lab.into(),
            });
        }
    }
    Comparison { host: host_name(), rows, missing }
}

/// Why the step that records `s` was skipped on this machine (e.g. KVM is
/// slow here), when its last check was skipped; checking again would not help.
fn skipped_here<'a>(state: &'a State, s: &Source) -> Option<&'a str> {
    let key = match s.formula {
        Formula::Ratio(key, _, _) | Formula::Value(key, _) | Formula::Relative(key) => key,
    };
    let step = key.split('.').next()?;
    let last = state.labs.get(s.lab)?.steps.get(step)?;
    let why = last.message.strip_prefix(crate::check::NOT_RUNNABLE).unwrap_or(&last.message);
    (last.outcome == crate::check::Outcome::Skipped).then_some(why)
}

fn state_relative(state: &State, s: &Source) -> Option<f64> {
    match s.formula {
        Formula::Relative(key) => lookup(state, s.lab, key),
        _ => None,
    }
}

fn value(state: &State, s: &Source, base: Option<f64>) -> Option<f64> {
    match s.formula {
        Formula::Ratio(num, den, scale) => {
            let d = lookup(state, s.lab, den)?;
            (d > 0.0).then(|| lookup(state, s.lab, num).map(|n| n / d * scale)).flatten()
        }
        Formula::Value(key, scale) => lookup(state, s.lab, key).map(|v| v * scale),
        Formula::Relative(key) => Some(lookup(state, s.lab, key)? * base?),
    }
}

/// The field guide's questions. `None` means "no strong need either way".
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Needs {
    pub(crate) other_os: Option<bool>,
    pub(crate) other_arch: Option<bool>,
    pub(crate) strong_isolation: Option<bool>,
    pub(crate) live_migration: Option<bool>,
    pub(crate) dedicated_resources: Option<bool>,
    pub(crate) hardware_virt: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Advice {
    pub(crate) tier: String,
    pub(crate) why: Vec<String>,
    /// The reader's own numbers that bear on the choice.
    pub(crate) evidence: Vec<String>,
    pub(crate) alternatives: Vec<String>,
}

fn fmt(v: f64) -> String {
    if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// Recommends a tier for `needs`, citing measured numbers where they exist.
pub(crate) fn advise(needs: &Needs, cmp: &Comparison) -> Advice {
    let yes = |o: Option<bool>| o == Some(true);
    let hw = needs.hardware_virt.unwrap_or(false);
    let (tier, mut why, alternatives): (&str, Vec<String>, Vec<&str>) = if yes(needs.other_arch) {
        (
            "software emulation",
            vec!["only an emulator runs code for another CPU architecture: qemu-user for one program, QEMU TCG for a whole system".into()],
            vec![],
        )
    } else if yes(needs.other_os) || yes(needs.live_migration) {
        let reason = if yes(needs.other_os) {
            "a different kernel or OS needs a virtual machine of its own"
        } else {
            "live migration moves whole virtual machines, not processes"
        };
        if hw {
            (
                "hardware-assisted (KVM)",
                vec![reason.into(), "this machine's KVM runs at hardware speed".into()],
                vec!["paravirtualization (Xen PV) for guests that cooperate"],
            )
        } else {
            (
                "paravirtualization",
                vec![reason.into(), "without fast hardware virtualization, a guest that knows it is virtualized (Xen PV, virtio drivers) avoids most traps".into()],
                vec!["software emulation (QEMU TCG) when the guest cannot be modified"],
            )
        }
    } else if yes(needs.dedicated_resources) {
        (
            "hardware partitioning",
            vec!["fixed slices of CPUs and memory give each workload guaranteed, isolated resources (on Linux: cpuset and memory cgroups)".into()],
            vec!["containers inside each slice"],
        )
    } else if yes(needs.strong_isolation) {
        if hw {
            ("hardware-assisted (KVM)", vec!["a separate kernel per tenant: a kernel bug in one guest does not reach the others; microVMs keep the cost low".into()], vec!["containers with a user-space kernel (gVisor)"])
        } else {
            (
                "User-Mode-Linux or paravirtualization",
                vec!["a separate kernel per tenant without hardware support".into()],
                vec!["containers, if one shared kernel is acceptable"],
            )
        }
    } else {
        ("containers", vec!["one kernel is acceptable, so the lightest tier wins: no second kernel, near bare-metal speed, the highest density".into()], vec!["hardware-assisted VMs if isolation needs grow"])
    };
    if needs.hardware_virt.is_none() {
        why.push("hardware virtualization: unknown (run `vlab doctor`)".into());
    }
    let mut evidence = Vec::new();
    for r in cmp.measured() {
        let relevant = match tier {
            "containers" => r.tier == "containers" || r.tier == BARE,
            t => r.tier.starts_with(t.split(' ').next().unwrap_or(t)) || r.tier == BARE || r.tier == "containers",
        };
        if relevant {
            let rel = r.vs_bare_metal.map(|x| format!(" ({}× bare metal)", fmt(x))).unwrap_or_default();
            evidence.push(format!("{} on {}: {} {}{rel}", r.title, r.tier, fmt(r.value.unwrap_or(0.0)), r.unit));
        }
    }
    if evidence.is_empty() {
        evidence.push("no measurements yet: the labs record them (`vlab compare` lists which)".into());
    }
    Advice { tier: tier.into(), why, evidence, alternatives: alternatives.into_iter().map(String::from).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::LabState;

    fn state(entries: &[(&str, &str, &str)]) -> State {
        let mut s = State::default();
        for (lab, key, v) in entries {
            s.labs
                .entry(lab.to_string())
                .or_insert_with(LabState::default)
                .measurements
                .insert(key.to_string(), v.to_string());
        }
        s
    }

    #[test]
    fn ratios_are_relative_to_bare_metal() {
        let s = state(&[
            ("01-bare-metal", "syscall.result.syscall_us", "100"),
            ("01-bare-metal", "syscall.result.syscall_count", "1000"),
            ("07-uml", "boot.guest.syscall_us", "2000"),
            ("07-uml", "boot.guest.syscall_count", "1000"),
            ("01-bare-metal", "cpu.result.cpu_us", "1000"),
            ("01-bare-metal", "cpu.result.cpu_iterations", "10000"),
            ("09-software-emulation", "cross.result.slowdown", "8"),
        ]);
        let c = compare(&s);
        assert_eq!(c.get("syscall", BARE), Some(100.0));
        let uml = c.rows.iter().find(|r| r.metric == "syscall" && r.tier == "User-Mode-Linux").unwrap();
        assert_eq!(uml.vs_bare_metal, Some(20.0));
        let emu = c.rows.iter().find(|r| r.tier.contains("qemu-user")).unwrap();
        assert_eq!((emu.value, emu.vs_bare_metal), (Some(800.0), Some(8.0)));
        assert!(c.missing.iter().any(|m| m.contains("10-kvm")));
    }

    #[test]
    fn a_step_skipped_on_this_machine_is_not_sent_back_to_be_checked() {
        let mut s = state(&[("10-kvm", "tcg-baseline.boot.ms", "2500")]);
        let skipped = crate::state::StepState {
            outcome: crate::check::Outcome::Skipped,
            points: 0,
            max_points: 4,
            message: format!("{}KVM is slow here (kvm_pvm)", crate::check::NOT_RUNNABLE),
        };
        s.labs.get_mut("10-kvm").unwrap().steps.insert("kvm-boot".into(), skipped);
        let c = compare(&s);
        let kvm: Vec<&String> = c.missing.iter().filter(|m| m.contains("(KVM)")).collect();
        assert!(!kvm.is_empty());
        assert!(
            kvm.iter().all(|m| m.ends_with("not measurable on this machine: KVM is slow here (kvm_pvm)")),
            "{kvm:?}"
        );
        assert!(c.missing.iter().any(|m| m.contains("run `vlab check 01-bare-metal`")));
    }

    #[test]
    fn advice_follows_the_field_guide() {
        let c = compare(&State::default());
        let ask = |n: Needs| advise(&n, &c).tier;
        assert_eq!(ask(Needs::default()), "containers");
        assert_eq!(ask(Needs { other_arch: Some(true), ..Default::default() }), "software emulation");
        assert_eq!(
            ask(Needs { other_os: Some(true), hardware_virt: Some(true), ..Default::default() }),
            "hardware-assisted (KVM)"
        );
        assert_eq!(
            ask(Needs { other_os: Some(true), hardware_virt: Some(false), ..Default::default() }),
            "paravirtualization"
        );
        assert_eq!(ask(Needs { dedicated_resources: Some(true), ..Default::default() }), "hardware partitioning");
    }
}
