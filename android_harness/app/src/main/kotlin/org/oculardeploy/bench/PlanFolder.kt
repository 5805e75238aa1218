package org.oculardeploy.bench

import android.content.res.AssetManager
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import org.oculardeploy.bench.core.PixelLayout
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

    /**
     * The fixed input as raw pixels 0..255 in the tensor's layout, channels (1: gray, 3: RGB or BGR) and H x W
     * ([PixelLayout]); no resizing (the image has the input size).
     */
    fun pixels(rel: String, spec: TensorSpec): FloatArray {
        val opts = BitmapFactory.Options().apply {
            inScaled = false
            inPremultiplied = false
            inPreferredConfig = Bitmap.Config.ARGB_8888
        }
        val bmp = open(rel).use { BitmapFactory.decodeStream(it, null, opts) }
            ?: throw IllegalArgumentException("cannot decode image $rel")
        val w = bmp.width
        val h = bmp.height
        val argb = IntArray(w * h)
        bmp.getPixels(argb, 0, w, 0, 0, w, h)
        return try {
            PixelLayout.fromArgb(argb, w, h, spec)
        } catch (e: IllegalArgumentException) {
            throw IllegalArgumentException("$rel: ${e.message}")
        }
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
