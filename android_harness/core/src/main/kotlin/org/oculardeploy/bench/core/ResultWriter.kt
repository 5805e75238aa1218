package org.oculardeploy.bench.core

import java.io.File
import java.io.FileOutputStream
import java.io.IOException

/** Writes `<dir>/<run_id>.json` atomically: a temp file in the same folder, fsync, then rename. */
class ResultWriter(private val dir: File) {
    fun write(result: BenchResult): File {
        if (!dir.isDirectory && !dir.mkdirs()) throw IOException("cannot create results folder $dir")
        val target = File(dir, "${result.runId}.json")
        val tmp = File(dir, ".${result.runId}.json.tmp")
        try {
            FileOutputStream(tmp).use { out ->
                out.write((result.toJson().toString(2) + "\n").toByteArray(Charsets.UTF_8))
                out.flush()
                out.fd.sync()
            }
            // File.renameTo replaces atomically on the same file system (java.nio.file needs API 26).
            if (!tmp.renameTo(target)) throw IOException("cannot rename $tmp to $target")
        } finally {
            tmp.delete()
        }
        return target
    }
}
