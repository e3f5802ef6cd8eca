package dev.prefixgate.api;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ChatTemplateTest {
  private static final List<ChatTemplate.Message> TURNS =
      List.of(
          new ChatTemplate.Message("system", "Be brief."),
          new ChatTemplate.Message("user", "Hi"),
          new ChatTemplate.Message("assistant", "Hello."),
          new ChatTemplate.Message("user", "What color is the sky?"));

  /** One user message renders exactly as the training prompt (prompt_of in the trainer). */
  @Test
  void tutorialFormatMatchesTheTrainingPrompt() {
    assertEquals(
        "Human: What color is the apple?\n\nAssistant:",
        ChatTemplate.TUTORIAL.render(
            List.of(new ChatTemplate.Message("user", "What color is the apple?"))));
    assertEquals(
        "Be brief.\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: What color is the sky?\n\nAssistant:",
        ChatTemplate.TUTORIAL.render(TURNS));
  }

  @Test
  void aModelDirectoryCanOverrideTheTemplate(@TempDir Path dir) throws Exception {
    assertEquals(ChatTemplate.TUTORIAL, ChatTemplate.forModel(dir));
    Files.writeString(
        dir.resolve("chat_template.json"),
        "{\"user_prefix\": \"<|user|>\", \"user_suffix\": \"<|assistant|>\", \"assistant_prefix\": \"\"}");
    assertEquals(
        "Be brief.\n\n<|user|>Hi<|assistant|>Hello.\n\n<|user|>What color is the sky?<|assistant|>",
        ChatTemplate.forModel(dir).render(TURNS));
  }
}
