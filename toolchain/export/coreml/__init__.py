"""The Core ML format plugin: the converter (:mod:`.exporter`), the iOS 12 / spec 3 lowering (:mod:`.spec3`) and
coremltools op overrides and passes (:mod:`.ops`)."""
