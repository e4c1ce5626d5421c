//! Cost per token: USD from a price per hour, joules from a wattage or from a power sensor the
//! OS exposes (Linux hwmon under the GPU's DRM device, or an Intel RAPL energy counter).

use super::record::Cost;

/// USD per 1M tokens when the machine costs `price_per_hour_usd` and produces `tok_s`.
pub fn usd_per_million_tokens(price_per_hour_usd: f64, tok_s: f64) -> Option<f64> {
    (price_per_hour_usd.is_finite()
        && price_per_hour_usd >= 0.0
        && tok_s.is_finite()
        && tok_s > 0.0)
        .then(|| price_per_hour_usd / 3600.0 / tok_s * 1e6)
}

/// Joules per token at an average power of `watts` and a rate of `tok_s`.
pub fn joules_per_token(watts: f64, tok_s: f64) -> Option<f64> {
    (watts.is_finite() && watts >= 0.0 && tok_s.is_finite() && tok_s > 0.0).then(|| watts / tok_s)
}

impl Cost {
    /// Cost figures at the decode rate from whatever is known: a price per hour, and an
    /// average power with where it came from (`given`, or a sensor's `source()`).
    pub fn from_inputs(
        price_per_hour_usd: Option<f64>,
        power: Option<(f64, String)>,
        decode_tok_s: f64,
    ) -> Cost {
        let (watts, power_source) = match power {
            Some((w, s)) => (Some(w), Some(s)),
            None => (None, None),
        };
        Cost {
            price_per_hour_usd,
            usd_per_mtok: price_per_hour_usd.and_then(|p| usd_per_million_tokens(p, decode_tok_s)),
            watts,
            power_source,
            joules_per_token: watts.and_then(|w| joules_per_token(w, decode_tok_s)),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use sensor::{
    find_gpu_power_sensor, find_gpu_power_sensor_in, PowerMeter, PowerSensor, SensorKind,
};

#[cfg(not(target_arch = "wasm32"))]
mod sensor {
    use std::path::{Path, PathBuf};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// What a sensor file holds.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum SensorKind {
        /// Instantaneous or averaged power in microwatts (hwmon `power1_average`/`power1_input`).
        Microwatts,
        /// A cumulative energy counter in microjoules (powercap `energy_uj`).
        Microjoules,
    }

    #[derive(Clone, Debug, PartialEq)]
    pub struct PowerSensor {
        pub path: PathBuf,
        pub kind: SensorKind,
        /// Counter wrap-around for energy counters (`max_energy_range_uj`), when known.
        pub max_range: Option<u64>,
    }

    fn read_u64(path: &Path) -> Option<u64> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    fn read_hex(path: &Path) -> Option<u32> {
        let s = std::fs::read_to_string(path).ok()?;
        u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
    }

    /// Entries of `dir` whose names pass `keep`, sorted.
    fn sorted_entries(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
            .collect();
        v.sort();
        v
    }

    impl PowerSensor {
        /// How the ledger names this sensor in `cost.power_source`.
        pub fn source(&self) -> String {
            let kind = match self.kind {
                SensorKind::Microwatts => "hwmon",
                SensorKind::Microjoules => "powercap",
            };
            format!("{kind}:{}", self.path.display())
        }

        /// The raw reading (µW or µJ); None when unreadable.
        pub fn read(&self) -> Option<u64> {
            read_u64(&self.path)
        }
    }

    /// The power sensor of the GPU with these PCI ids, if the OS exposes one readable to us.
    pub fn find_gpu_power_sensor(vendor_id: u32, device_id: u32) -> Option<PowerSensor> {
        find_gpu_power_sensor_in(Path::new("/sys"), vendor_id, device_id)
    }

    /// As `find_gpu_power_sensor`, below another sysfs root (for tests). Looks at
    /// `class/drm/card*/device/hwmon/hwmon*/power1_{average,input}` of the card whose `vendor` and
    /// `device` files match; for Intel, falls back to the RAPL `uncore` (graphics) energy counter.
    pub fn find_gpu_power_sensor_in(
        sys: &Path,
        vendor_id: u32,
        device_id: u32,
    ) -> Option<PowerSensor> {
        for card in sorted_entries(&sys.join("class/drm"), |n| {
            n.starts_with("card") && !n.contains('-')
        }) {
            let dev = card.join("device");
            if read_hex(&dev.join("vendor")) != Some(vendor_id)
                || read_hex(&dev.join("device")) != Some(device_id)
            {
                continue;
            }
            for hwmon in sorted_entries(&dev.join("hwmon"), |n| n.starts_with("hwmon")) {
                for file in ["power1_average", "power1_input"] {
                    let path = hwmon.join(file);
                    if read_u64(&path).is_some() {
                        return Some(PowerSensor {
                            path,
                            kind: SensorKind::Microwatts,
                            max_range: None,
                        });
                    }
                }
            }
        }
        if vendor_id != 0x8086 {
            return None;
        }
        let zones = sorted_entries(&sys.join("class/powercap"), |n| n.starts_with("intel-rapl"));
        zones.into_iter().find_map(|z| {
            let name = std::fs::read_to_string(z.join("name")).ok()?;
            let path = z.join("energy_uj");
            (name.trim() == "uncore" && read_u64(&path).is_some()).then(|| PowerSensor {
                max_range: read_u64(&z.join("max_energy_range_uj")),
                path,
                kind: SensorKind::Microjoules,
            })
        })
    }

    /// Average power over a run: a background thread samples a power sensor (or an energy
    /// counter is read at start and stop) until `stop`.
    pub struct PowerMeter {
        stop_tx: mpsc::Sender<()>,
        handle: std::thread::JoinHandle<Option<f64>>,
    }

    impl PowerMeter {
        pub fn start(sensor: PowerSensor, interval: Duration) -> PowerMeter {
            let (stop_tx, stop_rx) = mpsc::channel::<()>();
            let handle = std::thread::spawn(move || match sensor.kind {
                SensorKind::Microwatts => {
                    let mut samples = Vec::new();
                    loop {
                        if let Some(uw) = sensor.read() {
                            samples.push(uw as f64 * 1e-6);
                        }
                        match stop_rx.recv_timeout(interval) {
                            Err(mpsc::RecvTimeoutError::Timeout) => continue,
                            _ => break,
                        }
                    }
                    (!samples.is_empty())
                        .then(|| samples.iter().sum::<f64>() / samples.len() as f64)
                }
                SensorKind::Microjoules => {
                    let t0 = Instant::now();
                    let e0 = sensor.read()?;
                    let _ = stop_rx.recv();
                    let e1 = sensor.read()?;
                    let secs = t0.elapsed().as_secs_f64();
                    let delta = if e1 >= e0 {
                        e1 - e0
                    } else {
                        sensor.max_range?.checked_sub(e0)? + e1
                    };
                    (secs > 0.0).then(|| delta as f64 * 1e-6 / secs)
                }
            });
            PowerMeter { stop_tx, handle }
        }

        /// Stops sampling; the average watts, or None when nothing could be read.
        pub fn stop(self) -> Option<f64> {
            let _ = self.stop_tx.send(());
            self.handle.join().ok().flatten()
        }
    }
}
