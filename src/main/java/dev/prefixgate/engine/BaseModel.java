package dev.prefixgate.engine;

import java.io.IOException;
import java.nio.file.Path;

/**
 * What identifies the served base model to adapters and events: a configured name and the
 * architecture-and-vocabulary fingerprint ({@link ModelFingerprint}), never a local path.
 *
 * @param name the configured model name (default: the model directory's folder name)
 * @param fingerprint {@link ModelFingerprint#of}
 * @param config the shapes an adapter must match
 */
public record BaseModel(String name, String fingerprint, ModelConfig config) {
  public BaseModel {
    if (name == null || name.isBlank()) throw new IllegalArgumentException("model name is blank");
  }

  public static BaseModel of(BloomModel model, String name) throws IOException {
    Path folder = model.dir().toAbsolutePath().normalize().getFileName();
    String shown = name == null || name.isBlank() ? String.valueOf(folder) : name;
    return new BaseModel(shown, ModelFingerprint.of(model.dir(), model.config()), model.config());
  }
}
