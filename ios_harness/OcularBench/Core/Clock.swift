import Foundation

/// A monotonic clock in nanoseconds (mach time on the device, a fake one in tests).
protocol NanoClock {
    func now() -> UInt64
}

#if canImport(Darwin)
/// `mach_absolute_time` converted to nanoseconds with the timebase (125/3 on A-series phones).
struct MachClock: NanoClock {
    private let numer: UInt64
    private let denom: UInt64

    init() {
        var info = mach_timebase_info_data_t()
        mach_timebase_info(&info)
        numer = UInt64(info.numer)
        denom = UInt64(info.denom)
    }

    func now() -> UInt64 {
        let t = mach_absolute_time()
        // Split the multiplication so that t * numer cannot overflow after months of uptime.
        return (t / denom) * numer + (t % denom) * numer / denom
    }
}
#else
import Glibc

/// `CLOCK_MONOTONIC` in nanoseconds: lets the core build and run its tests with SwiftPM on Linux.
/// Devices always take the mach branch above; no device timing comes from this clock.
struct MonotonicClock: NanoClock {
    func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// The runner's default clock keeps its name on every platform.
typealias MachClock = MonotonicClock
#endif

/// Seeded random pixels, identical on iOS, Android and Python: SplitMix64, value = x >> 56 in 0..255.
///
/// Example: seed 0 gives state 0x9E3779B97F4A7C15, mixed 0xE220A8397B1DCDAF, pixel 226.
enum SeededPixels {
    static func generate(count: Int, seed: Int64) -> [Float] {
        var state = UInt64(bitPattern: seed)
        var out = [Float]()
        out.reserveCapacity(count)
        for _ in 0..<count {
            state = state &+ 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z = z ^ (z >> 31)
            out.append(Float(z >> 56))
        }
        return out
    }
}
