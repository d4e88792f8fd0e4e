//! invocation::cost: what an invocation costs: the function's architecture, Lambda's
//! on-demand prices, and the formula (memory × billed duration × price per GB-second,
//! plus the request). Pure.

/// Instruction set of the function (it decides the price per GB-second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86_64.
    X86_64,
    /// arm64 (Graviton).
    Arm64,
}

impl Arch {
    /// The architecture this binary was built for, which is the function's (a layer's
    /// extension binary must match the function's architecture to run at all).
    pub const fn native() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::X86_64
        }
    }

    /// `x86_64`/`amd64`/`x86` or `arm64`/`aarch64`, any case.
    pub fn parse(s: &str) -> Option<Arch> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" | "amd64" | "x86" | "x64" => Some(Arch::X86_64),
            "arm64" | "aarch64" | "arm" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// `x86_64` or `arm64`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// Lambda's on-demand prices (USD), used for the estimated cost of an invocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    /// Price of one GB-second of duration.
    pub gb_second_usd: f64,
    /// Price of one request.
    pub request_usd: f64,
}

impl Pricing {
    /// x86_64 price of a GB-second.
    pub const X86_64_GB_SECOND: f64 = 0.000_016_666_7;
    /// arm64 price of a GB-second.
    pub const ARM64_GB_SECOND: f64 = 0.000_013_333_4;
    /// Price of a request.
    pub const REQUEST: f64 = 0.000_000_2;

    /// The first-tier list price of `arch` (us-east-1).
    pub const fn for_arch(arch: Arch) -> Pricing {
        Pricing {
            gb_second_usd: match arch {
                Arch::X86_64 => Self::X86_64_GB_SECOND,
                Arch::Arm64 => Self::ARM64_GB_SECOND,
            },
            request_usd: Self::REQUEST,
        }
    }

    /// `memory_mb/1024` GB × `billed_ms/1000` s × price per GB-second + price per request.
    pub fn cost(&self, memory_size_mb: u64, billed_duration_ms: u64) -> f64 {
        let gb = memory_size_mb as f64 / 1024.0;
        let s = billed_duration_ms as f64 / 1000.0;
        gb * s * self.gb_second_usd + self.request_usd
    }
}

impl Default for Pricing {
    fn default() -> Self {
        Pricing::for_arch(Arch::native())
    }
}
