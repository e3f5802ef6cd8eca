package dev.prefixgate.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * What the served graph's weights are: float32 as exported, or a weight-only block-wise quantized
 * copy written by {@code python -m prefixgate_trainer.quantize}, which records itself in {@code
 * prefixgate-model.json} next to {@code model.onnx}. The engine runs every variant the same way
 * (the KV and logits stay float32); this is what the gateway reports about it.
 *
 * @param weights {@code fp32}, {@code int8} or {@code int4}
 * @param method how the weights were quantized ({@code MatMulNBits}); empty for float32
 * @param bits bits per quantized weight; 32 for float32
 * @param blockSize rows of a weight that share one scale (and zero point); 0 for float32
 * @param symmetric whether blocks have no zero point
 * @param accuracyLevel MatMulNBits' {@code accuracy_level} (4: int8 activations on CPU); 0 if unset
 * @param sourceOnnxSha256 sha256 of the float32 graph (and its external data) it was made from
 */
public record ModelWeights(
    String weights,
    Optional<String> method,
    int bits,
    int blockSize,
    boolean symmetric,
    int accuracyLevel,
    Optional<String> sourceOnnxSha256) {

  /** The file a quantized model directory describes itself in. */
  public static final String FILE = "prefixgate-model.json";

  public static final ModelWeights FP32 =
      new ModelWeights("fp32", Optional.empty(), 32, 0, false, 0, Optional.empty());

  public boolean quantized() {
    return bits < 32;
  }

  /**
   * Reads {@value #FILE} from a model directory; a directory without one holds float32 weights.
   *
   * @throws EngineException when the file exists but does not say what the weights are
   */
  public static ModelWeights read(Path dir) {
    Path file = dir.resolve(FILE);
    if (!Files.isRegularFile(file)) return FP32;
    JsonNode q;
    try {
      q = new ObjectMapper().readTree(Files.readAllBytes(file)).path("quantization");
    } catch (IOException e) {
      throw new EngineException("cannot read " + file + ": " + e.getMessage(), e);
    }
    if (!q.isObject()) throw new EngineException(file + " has no 'quantization' object");
    int bits = q.path("bits").asInt(0);
    String weights = q.path("weights").asText("");
    if (bits < 1 || bits > 32 || weights.isEmpty()) {
      throw new EngineException(file + ": 'quantization' needs 'weights' and 'bits' in 1..32");
    }
    return new ModelWeights(
        weights,
        text(q, "method"),
        bits,
        q.path("block_size").asInt(0),
        q.path("symmetric").asBoolean(false),
        q.path("accuracy_level").asInt(0),
        text(q.path("source"), "onnx_sha256"));
  }

  private static Optional<String> text(JsonNode n, String field) {
    JsonNode v = n.get(field);
    return v == null || !v.isTextual() ? Optional.empty() : Optional.of(v.asText());
  }
}
