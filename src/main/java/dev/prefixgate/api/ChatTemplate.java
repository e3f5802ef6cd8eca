package dev.prefixgate.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * How chat messages become one prompt. The default is the tutorial's format: a system message first
 * as plain text, then {@code Human: ...\n\nAssistant:} per user turn, assistant turns appended as
 * {@code " answer\n\n"}. The prompt ends at {@code Assistant:} with no trailing space, because
 * byte-level BPE merges that space into the answer's first word.
 *
 * <p>A model directory may override it with {@code chat_template.json}: an object with any of the
 * keys {@code system_prefix}, {@code system_suffix}, {@code user_prefix}, {@code user_suffix},
 * {@code assistant_prefix}, {@code assistant_suffix}.
 */
record ChatTemplate(
    String systemPrefix,
    String systemSuffix,
    String userPrefix,
    String userSuffix,
    String assistantPrefix,
    String assistantSuffix) {

  record Message(String role, String content) {}

  static final ChatTemplate TUTORIAL =
      new ChatTemplate("", "\n\n", "Human: ", "\n\nAssistant:", " ", "\n\n");

  /** The model directory's template, or the tutorial's when it has none. */
  static ChatTemplate forModel(Path modelDir) {
    Path file = modelDir.resolve("chat_template.json");
    if (!Files.isRegularFile(file)) return TUTORIAL;
    try {
      JsonNode n = new ObjectMapper().readTree(Files.readAllBytes(file));
      return new ChatTemplate(
          n.path("system_prefix").asText(TUTORIAL.systemPrefix),
          n.path("system_suffix").asText(TUTORIAL.systemSuffix),
          n.path("user_prefix").asText(TUTORIAL.userPrefix),
          n.path("user_suffix").asText(TUTORIAL.userSuffix),
          n.path("assistant_prefix").asText(TUTORIAL.assistantPrefix),
          n.path("assistant_suffix").asText(TUTORIAL.assistantSuffix));
    } catch (IOException e) {
      throw new IllegalStateException("cannot read " + file + ": " + e.getMessage(), e);
    }
  }

  String render(List<Message> messages) {
    StringBuilder sb = new StringBuilder();
    for (Message m : messages) {
      switch (m.role()) {
        case "system" -> sb.append(systemPrefix).append(m.content()).append(systemSuffix);
        case "user" -> sb.append(userPrefix).append(m.content()).append(userSuffix);
        case "assistant" -> sb.append(assistantPrefix).append(m.content()).append(assistantSuffix);
        default -> throw new IllegalStateException(m.role());
      }
    }
    return sb.toString();
  }
}
