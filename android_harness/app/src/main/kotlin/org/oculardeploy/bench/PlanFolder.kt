package org.oculardeploy.bench

import android.content.res.AssetManager
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import org.oculardeploy.bench.core.TensorSpec
import java.io.File
import java.io.FileInputStream
import java.io.InputStream
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/** A plan folder from `deploy bench plan`: in the APK's assets or pushed with adb. */
interface PlanFolder {
    fun open(rel: String): InputStream
    fun map(rel: String): MappedByteBuffer

    fun readText(rel: String): String = open(rel).use { it.readBytes().toString(Charsets.UTF_8) }

    /** The fixed input as raw RGB 0..255 in the tensor's layout; no resizing (the image has the input size). */
    fun pixels(rel: String, spec: TensorSpec): FloatArray {
        val opts = BitmapFactory.Options().apply {
            inScaled = false
            inPremultiplied = false
            inPreferredConfig = Bitmap.Config.ARGB_8888
        }
        val bmp = open(rel).use { BitmapFactory.decodeStream(it, null, opts) }
            ?: throw IllegalArgumentException("cannot decode image $rel")
        val nhwc = spec.layout == "nhwc"
        val (h, w) = if (nhwc) spec.shape[spec.shape.size - 3] to spec.shape[spec.shape.size - 2]
        else spec.shape[spec.shape.size - 2] to spec.shape[spec.shape.size - 1]
        require(bmp.width == w && bmp.height == h) { "$rel is ${bmp.width}x${bmp.height}; ${spec.name} takes ${w}x$h" }
        val argb = IntArray(w * h)
        bmp.getPixels(argb, 0, w, 0, 0, w, h)
        val plane = w * h
        val out = FloatArray(plane * 3)
        for (p in 0 until plane) {
            val c = argb[p]
            val rgb = intArrayOf((c shr 16) and 0xFF, (c shr 8) and 0xFF, c and 0xFF)
            for (k in 0 until 3) {
                if (nhwc) out[p * 3 + k] = rgb[k].toFloat() else out[k * plane + p] = rgb[k].toFloat()
            }
        }
        return out
    }

    companion object {
        const val ASSET_PREFIX = "asset:"
        const val DEFAULT_PLAN = "asset:bench_plan/plan.json"

        /** `asset:bench_plan/plan.json` or a file path; returns the folder and the plan file's name in it. */
        fun locate(arg: String?, assets: AssetManager): Pair<PlanFolder, String> {
            val spec = arg?.takeIf { it.isNotBlank() } ?: DEFAULT_PLAN
            return if (spec.startsWith(ASSET_PREFIX)) {
                val path = spec.removePrefix(ASSET_PREFIX)
                AssetFolder(assets, path.substringBeforeLast('/', "")) to path.substringAfterLast('/')
            } else {
                val file = File(spec)
                FileFolder(file.parentFile ?: File(".")) to file.name
            }
        }
    }
}

class AssetFolder(private val assets: AssetManager, private val base: String) : PlanFolder {
    private fun path(rel: String) = if (base.isEmpty()) rel else "$base/$rel"
    override fun open(rel: String): InputStream = assets.open(path(rel))

    override fun map(rel: String): MappedByteBuffer {
        // Works only for stored (uncompressed) assets: hence noCompress "tflite" in build.gradle.kts.
        val fd = assets.openFd(path(rel))
        return FileInputStream(fd.fileDescriptor).channel.use {
            it.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
        }
    }
}

class FileFolder(private val dir: File) : PlanFolder {
    override fun open(rel: String): InputStream = FileInputStream(File(dir, rel))
    override fun map(rel: String): MappedByteBuffer = FileInputStream(File(dir, rel)).channel.use {
        it.map(FileChannel.MapMode.READ_ONLY, 0, it.size())
    }
}
