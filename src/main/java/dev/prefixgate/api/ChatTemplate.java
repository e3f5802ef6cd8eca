package dev.prefixgate.api;

import java.util.List;

/**
 * The tutorial's prompt format: {@code Human: ...\n\nAssistant:}, one pair per turn, a system
 * message first as plain text. The prompt ends at {@code Assistant:} with no trailing space,
 * because byte-level BPE merges that space into the answer's first word.
 */
final class ChatTemplate {
  record Message(String role, String content) {}

  private ChatTemplate() {}

  static String render(List<Message> messages) {
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < messages.size(); i++) {
      Message m = messages.get(i);
      switch (m.role()) {
        case "system" -> sb.append(m.content()).append("\n\n");
        case "user" -> sb.append("Human: ").append(m.content()).append("\n\nAssistant:");
        case "assistant" -> sb.append(' ').append(m.content()).append("\n\n");
        default -> throw new IllegalStateException(m.role());
      }
    }
    return sb.toString();
  }
}
