package org.oculardeploy.bench.core

/**
 * Seeded random pixels, identical on Android, iOS and Python: SplitMix64, value = (x ushr 56) in 0..255.
 *
 * Example: seed 0 gives first state 0x9E3779B97F4A7C15 -> mixed 0xE220A8397B1DCDAF -> pixel 226.
 */
object SeededPixels {
    fun generate(count: Int, seed: Long): FloatArray {
        var state = seed
        return FloatArray(count) {
            state += -0x61c8864680b583ebL // 0x9E3779B97F4A7C15
            var z = state
            z = (z xor (z ushr 30)) * -0x40a7b892e31b1a47L // 0xBF58476D1CE4E5B9
            z = (z xor (z ushr 27)) * -0x6b2fb644ecceee15L // 0x94D049BB133111EB
            z = z xor (z ushr 31)
            (z ushr 56).toFloat()
        }
    }
}
