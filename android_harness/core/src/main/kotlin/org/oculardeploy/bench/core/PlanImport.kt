package org.oculardeploy.bench.core

import java.io.File

/**
 * A plan pushed to adb's own folder (`deploy bench android` pushes to /data/local/tmp/ocularbench/plans/P)
 * is copied into the app's private files before it runs.
 *
 * Why not push into the app's folders: adbd chowns every file it pushes (`handle_send_file` in
 * adb/daemon/file_sync_service.cpp), which fails in Android/data/<pkg> on some Android 11+ builds.
 * Why the app may read /data/local/tmp on Android 5 to 15: the folder is `drwxrwx--x shell shell`
 * (others may traverse), the collector makes the pushed files world-readable (`chmod -R 755`), and
 * SELinux allows `untrusted_app shell_data_file:file r_file_perms` (untrusted_app.te since Android 5,
 * untrusted_app_all.te since 8.0). Copying (rather than mapping the model in place) means a later push
 * or `rm` by the collector can never change the files under a running benchmark.
 *
 * Only the files the plan names are copied (plan.json, each run's artifact and fixed input), so the
 * folder is never listed: listing needs more than the read the policy grants on older releases.
 */
object PlanImport {
    /** True when [planFile] is outside every folder the app owns (then it must be copied first). */
    fun needsImport(planFile: File, ownDirs: List<File>): Boolean {
        val path = planFile.canonicalPath
        return ownDirs.none { path.startsWith(it.canonicalPath + File.separator) }
    }

    /**
     * Copy [planFile] and the files it names into `destRoot/<plan_id>/` (replacing an earlier copy);
     * returns the copied plan file. A file the plan names but the folder lacks is a [PlanException].
     */
    fun copy(planFile: File, destRoot: File): File {
        val text = planFile.readText()
        val plan = Plan.parse(text)
        val src = planFile.absoluteFile.parentFile ?: File(".")
        val dest = File(destRoot, plan.planId)
        val tmp = File(destRoot, ".${plan.planId}.importing")
        tmp.deleteRecursively()
        val rels = (plan.runs.map { it.artifact.path } + plan.runs.mapNotNull { it.fixedInput }).toSortedSet()
        for (rel in rels) {
            if (rel.startsWith("/") || rel.split('/').contains("..")) {
                throw PlanException("plan path '$rel' must be relative to the plan folder")
            }
            val from = File(src, rel)
            if (!from.isFile) throw PlanException("the plan names $rel, but ${from.path} is not a readable file")
            val to = File(tmp, rel)
            to.parentFile?.mkdirs()
            from.inputStream().use { i -> to.outputStream().use { o -> i.copyTo(o) } }
        }
        tmp.mkdirs()
        File(tmp, planFile.name).writeText(text)
        dest.deleteRecursively()
        if (!tmp.renameTo(dest)) throw PlanException("cannot move the imported plan to ${dest.path}")
        return File(dest, planFile.name)
    }
}
