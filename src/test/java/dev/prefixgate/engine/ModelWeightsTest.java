package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a model directory says about its weights: float32 by default, or prefixgate-model.json. */
class ModelWeightsTest {
  // What `python -m prefixgate_trainer.quantize --bits 8 --block-size 32` writes (abridged).
  private static final String INT8 =
      "{\"format\":\"prefixgate-model-v1\",\"quantization\":{\"weights\":\"int8\","
          + "\"method\":\"MatMulNBits\",\"bits\":8,\"block_size\":32,\"symmetric\":false,"
          + "\"accuracy_level\":4,\"lm_head\":\"quantized\","
          + "\"source\":{\"onnx_sha256\":\"ab12\",\"fingerprint\":\"cd34\"}}}";

  @Test
  void theDemoModelIsFloat32() {
    ModelWeights w = ModelWeights.read(Path.of("trainer/fixtures/tiny-bloom"));
    assertEquals(ModelWeights.FP32, w);
    assertFalse(w.quantized());
  }

  @Test
  void aQuantizedDirectorySaysWhatItIs(@TempDir Path dir) throws Exception {
    Files.writeString(dir.resolve(ModelWeights.FILE), INT8);
    ModelWeights w = ModelWeights.read(dir);
    assertTrue(w.quantized());
    assertEquals(
        new ModelWeights("int8", Optional.of("MatMulNBits"), 8, 32, false, 4, Optional.of("ab12")),
        w);
  }

  @Test
  void aFileThatDoesNotSayIsRefused(@TempDir Path dir) throws Exception {
    Files.writeString(dir.resolve(ModelWeights.FILE), "{\"format\":\"prefixgate-model-v1\"}");
    assertThrows(EngineException.class, () -> ModelWeights.read(dir));
    Files.writeString(dir.resolve(ModelWeights.FILE), "{\"quantization\":{\"weights\":\"int4\"}}");
    assertThrows(EngineException.class, () -> ModelWeights.read(dir));
    Files.writeString(dir.resolve(ModelWeights.FILE), "{not json");
    assertThrows(EngineException.class, () -> ModelWeights.read(dir));
  }
}
