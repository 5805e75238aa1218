package org.oculardeploy.bench.core

/**
 * Where a plan's input values go: channels (1 or 3), height and width (height first: periocular crops are
 * rectangular) and the channel order, read from the tensor's shape, layout and colour (the manifest's InputSpec,
 * copied into the plan: shape [1, C, H, W] for nchw, [C, H, W] for chw, [1, H, W, C] for nhwc; colour
 * "rgb" | "bgr" | "gray", absent in older plans: then gray for 1 channel, rgb for 3).
 */
data class PixelGeometry(
    val channels: Int,
    val height: Int,
    val width: Int,
    val channelsLast: Boolean,
    val color: String,
) {
    val count: Int get() = channels * height * width

    companion object {
        val COLORS = listOf("rgb", "bgr", "gray")

        fun of(spec: TensorSpec): PixelGeometry {
            val s = spec.shape
            val layout = spec.layout.lowercase()
            val rank = if (layout == "chw") 3 else 4
            require(layout in listOf("nchw", "chw", "nhwc")) { "${spec.name}: layout '${spec.layout}' is not nchw, chw or nhwc" }
            require(s.size == rank) { "${spec.name}: a $layout input has $rank dimensions, not ${s.size} (shape $s)" }
            val last = layout == "nhwc"
            val c = if (last) s[3] else s[s.size - 3]
            val h = if (last) s[1] else s[s.size - 2]
            val w = if (last) s[2] else s[s.size - 1]
            require(c == 1 || c == 3) { "${spec.name}: $c channels; the harness feeds 1 (gray) or 3 (RGB/BGR)" }
            require(h > 0 && w > 0) { "${spec.name}: shape $s has an empty side" }
            val color = spec.color?.lowercase() ?: if (c == 1) "gray" else "rgb"
            require(color in COLORS) { "${spec.name}: colour '${spec.color}' is not one of $COLORS" }
            require((color == "gray") == (c == 1)) { "${spec.name}: colour '$color' does not fit $c channel(s)" }
            return PixelGeometry(c, h, w, last, color)
        }
    }
}

/** Decoded image pixels -> the model's input values 0..255, no resizing (the plan's image has the input size). */
object PixelLayout {
    /**
     * Luma of one pixel as Pillow's `convert("L")` computes it (ITU-R 601-2, libImaging/Convert.c `L24`:
     * (r*19595 + g*38470 + b*7471 + 0x8000) >> 16), so an RGB image fed to a 1-channel model gives the values
     * Python gives; a gray image (r = g = b) keeps its values exactly.
     */
    fun luma(r: Int, g: Int, b: Int): Int = (r * 19595 + g * 38470 + b * 7471 + 0x8000) ushr 16

    /**
     * [argb]: ARGB_8888 ints, row-major, top row first, [width] x [height] (Android's Bitmap.getPixels order).
     * Returns C*H*W floats in the tensor's layout and channel order.
     */
    fun fromArgb(argb: IntArray, width: Int, height: Int, spec: TensorSpec): FloatArray {
        val g = PixelGeometry.of(spec)
        require(width == g.width && height == g.height) {
            "the image is ${width}x$height (width x height); ${spec.name} takes ${g.width}x${g.height}"
        }
        require(argb.size == width * height) { "${argb.size} pixels for a ${width}x$height image" }
        val plane = width * height
        val out = FloatArray(g.count)
        for (p in 0 until plane) {
            val px = argb[p]
            val r = (px shr 16) and 0xFF
            val gr = (px shr 8) and 0xFF
            val b = px and 0xFF
            if (g.channels == 1) {
                out[p] = luma(r, gr, b).toFloat()
                continue
            }
            val values = if (g.color == "bgr") intArrayOf(b, gr, r) else intArrayOf(r, gr, b)
            for (k in 0 until 3) {
                if (g.channelsLast) out[p * 3 + k] = values[k].toFloat() else out[k * plane + p] = values[k].toFloat()
            }
        }
        return out
    }
}
