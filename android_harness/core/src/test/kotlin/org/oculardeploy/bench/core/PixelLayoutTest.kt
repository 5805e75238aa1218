package org.oculardeploy.bench.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** 1-channel (grayscale NIR) and rectangular (H != W) inputs: what the plan's shape, layout and colour say. */
class PixelLayoutTest {
    private fun spec(shape: List<Int>, layout: String = "nchw", color: String? = null) =
        TensorSpec("image", shape, layout, "float32", null, color)

    private fun argb(r: Int, g: Int, b: Int) = (0xFF shl 24) or (r shl 16) or (g shl 8) or b

    /** A W x H image whose pixel (x, y) has r = x, g = y, b = 10 * x + y (all distinct, orientation visible). */
    private fun image(w: Int, h: Int) = IntArray(w * h) { p -> argb(p % w, p / w, 10 * (p % w) + p / w) }

    private fun refuses(fragment: String, block: () -> Unit) {
        try {
            block()
            fail("expected an error mentioning '$fragment'")
        } catch (e: IllegalArgumentException) {
            assertTrue("'${e.message}' should mention '$fragment'", e.message!!.contains(fragment))
        }
    }

    @Test
    fun rectangularRgbNchwIsHeightFirst() {
        val (h, w) = 2 to 3
        val out = PixelLayout.fromArgb(image(w, h), w, h, spec(listOf(1, 3, h, w)))
        assertEquals(3 * h * w, out.size)
        // plane R, row 1 (y = 1), column 2 (x = 2): r = x = 2; plane B at the same pixel: 10 * 2 + 1
        assertEquals(2f, out[0 * h * w + 1 * w + 2])
        assertEquals(1f, out[1 * h * w + 1 * w + 2])
        assertEquals(21f, out[2 * h * w + 1 * w + 2])
    }

    @Test
    fun rectangularNhwcAndBgr() {
        val (h, w) = 3 to 2
        val out = PixelLayout.fromArgb(image(w, h), w, h, spec(listOf(1, h, w, 3), "nhwc", "bgr"))
        val p = 2 * w + 1 // y = 2, x = 1
        assertArrayEquals(floatArrayOf(12f, 2f, 1f), out.copyOfRange(p * 3, p * 3 + 3), 0f)
    }

    @Test
    fun oneChannelGrayKeepsGrayValuesAndUsesPillowLumaForColour() {
        val (h, w) = 2 to 4
        val gray = IntArray(w * h) { argb(it * 30, it * 30, it * 30) }
        val out = PixelLayout.fromArgb(gray, w, h, spec(listOf(1, 1, h, w)))
        assertArrayEquals(FloatArray(w * h) { it * 30f }, out, 0f)
        // Pillow: Image.new("RGB", (1, 1), (200, 100, 50)).convert("L").getpixel((0, 0)) == 124
        assertEquals(124, PixelLayout.luma(200, 100, 50))
        val chw = PixelLayout.fromArgb(IntArray(w * h) { argb(200, 100, 50) }, w, h, spec(listOf(1, h, w), "chw"))
        assertTrue(chw.all { it == 124f })
        val nhwc = PixelLayout.fromArgb(gray, w, h, spec(listOf(1, h, w, 1), "nhwc", "gray"))
        assertArrayEquals(out, nhwc, 0f)
    }

    @Test
    fun geometryFromShapeLayoutAndColour() {
        assertEquals(PixelGeometry(1, 64, 128, false, "gray"), PixelGeometry.of(spec(listOf(1, 1, 64, 128))))
        assertEquals(PixelGeometry(3, 96, 192, false, "rgb"), PixelGeometry.of(spec(listOf(3, 96, 192), "chw")))
        assertEquals(PixelGeometry(3, 48, 192, true, "bgr"), PixelGeometry.of(spec(listOf(1, 48, 192, 3), "nhwc", "bgr")))
        // seeded (random-input) runs draw exactly C*H*W values for a 1-channel rectangular input
        val s = spec(listOf(1, 1, 64, 128))
        assertEquals(PixelGeometry.of(s).count, SeededPixels.generate(s.elementCount, 0).size)
    }

    @Test
    fun refusesWhatItCannotFeed() {
        refuses("takes 4x2") { PixelLayout.fromArgb(image(2, 4), 2, 4, spec(listOf(1, 3, 2, 4))) }
        refuses("2 channels") { PixelGeometry.of(spec(listOf(1, 2, 8, 8))) }
        refuses("does not fit 3 channel") { PixelGeometry.of(spec(listOf(1, 3, 8, 8), color = "gray")) }
        refuses("does not fit 1 channel") { PixelGeometry.of(spec(listOf(1, 1, 8, 8), color = "rgb")) }
        refuses("4 dimensions") { PixelGeometry.of(spec(listOf(3, 8, 8))) }
    }

    @Test
    fun planCarriesTheColour() {
        val o = PlanJson.valid()
        o.getJSONArray("runs").getJSONObject(0).getJSONObject("input").put("color", "gray")
        assertEquals("gray", Plan.parse(o.toString()).runs[0].input.color)
        o.getJSONArray("runs").getJSONObject(0).getJSONObject("input").put("color", "cmyk")
        try {
            Plan.parse(o.toString())
            fail("cmyk accepted")
        } catch (e: PlanException) {
            assertTrue(e.message!!.contains("input.color 'cmyk'"))
        }
    }
}
