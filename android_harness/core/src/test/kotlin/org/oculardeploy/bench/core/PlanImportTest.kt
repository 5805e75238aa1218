package org.oculardeploy.bench.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File
import java.nio.file.Files

class PlanImportTest {
    private fun pushed(root: File, withInput: Boolean = true): File {
        val dir = File(root, "data/local/tmp/ocularbench/plans/p1").apply { mkdirs() }
        File(dir, "artifacts/tiny-tflite-fp32").mkdirs()
        File(dir, "artifacts/tiny-tflite-fp32/tiny-tflite-fp32.tflite").writeBytes(byteArrayOf(1, 2, 3))
        if (withInput) File(dir, "inputs").mkdirs().also { File(dir, "inputs/fixed_0a1b2c3d.png").writeBytes(byteArrayOf(9)) }
        File(dir, "unrelated.bin").writeBytes(byteArrayOf(7))
        return File(dir, "plan.json").apply { writeText(PlanJson.valid().toString()) }
    }

    @Test
    fun copiesThePlanAndTheFilesItNamesIntoTheAppsOwnFolder() {
        val root = Files.createTempDirectory("import").toFile()
        val own = File(root, "data/user/0/pkg/files").apply { mkdirs() }
        val plan = pushed(root)
        assertTrue(PlanImport.needsImport(plan, listOf(own)))
        val copied = PlanImport.copy(plan, File(own, "plans"))
        assertFalse(PlanImport.needsImport(copied, listOf(own)))
        val dir = copied.parentFile
        assertEquals("android-20250302T091500", dir.name)
        assertEquals(listOf<Byte>(1, 2, 3), File(dir, "artifacts/tiny-tflite-fp32/tiny-tflite-fp32.tflite").readBytes().toList())
        assertTrue(File(dir, "inputs/fixed_0a1b2c3d.png").isFile)
        assertFalse("only what the plan names", File(dir, "unrelated.bin").exists())
        assertEquals(plan.readText(), copied.readText())
        // a second import of the same plan replaces the first
        assertEquals(copied.canonicalPath, PlanImport.copy(plan, File(own, "plans")).canonicalPath)
    }

    @Test
    fun aMissingFileIsNamed() {
        val root = Files.createTempDirectory("import").toFile()
        try {
            PlanImport.copy(pushed(root, withInput = false), File(root, "own"))
            fail("a plan naming a missing file must not import")
        } catch (e: PlanException) {
            assertTrue(e.message!!, e.message!!.contains("inputs/fixed_0a1b2c3d.png"))
        }
    }
}
