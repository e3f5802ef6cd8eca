package dev.prefixgate.retrain;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.prefixgate.engine.PrefixAdapter;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.transaction.Transactional;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import org.hibernate.Session;

/** Tenants' training data sets, validated line by line before anything is stored. */
@ApplicationScoped
public class Datasets {
  // One JSON value per line, as the trainer's json.loads reads it: "{...} {...}" is refused.
  private static final ObjectMapper JSON =
      new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

  @Inject Session db;

  /**
   * Checks every line: a JSON object with non-empty string {@code instruction} and {@code output}
   * and an optional string {@code input}. Blank lines are skipped.
   *
   * @return the number of records
   * @throws IllegalArgumentException naming the first bad line (1-based)
   */
  public static int validate(byte[] jsonl) {
    String text;
    try {
      text =
          StandardCharsets.UTF_8
              .newDecoder()
              .onMalformedInput(CodingErrorAction.REPORT)
              .decode(java.nio.ByteBuffer.wrap(jsonl))
              .toString();
    } catch (CharacterCodingException e) {
      throw new IllegalArgumentException("dataset is not valid UTF-8");
    }
    int records = 0;
    String[] lines = text.split("\n", -1);
    for (int i = 0; i < lines.length; i++) {
      String line = lines[i].strip();
      if (line.isEmpty()) continue;
      int n = i + 1;
      JsonNode node;
      try {
        node = JSON.readTree(line);
      } catch (Exception e) {
        throw new IllegalArgumentException("line " + n + ": invalid JSON");
      }
      if (node == null || !node.isObject())
        throw new IllegalArgumentException("line " + n + ": expected a JSON object");
      for (String f : new String[] {"instruction", "output"}) {
        if (!node.path(f).isTextual() || node.get(f).asText().isBlank()) {
          throw new IllegalArgumentException(
              "line " + n + ": '" + f + "' must be a non-empty string");
        }
      }
      if (node.has("input") && !node.get("input").isTextual()) {
        throw new IllegalArgumentException("line " + n + ": 'input' must be a string");
      }
      records++;
    }
    if (records == 0) throw new IllegalArgumentException("dataset has no records");
    return records;
  }

  @Transactional
  public Dataset store(String tenantId, String name, byte[] jsonl) {
    Dataset d = new Dataset();
    d.records = validate(jsonl);
    d.id = UUID.randomUUID().toString();
    d.tenantId = tenantId;
    d.name = name;
    d.digest = PrefixAdapter.sha256(jsonl);
    d.content = jsonl;
    d.createdAt = Instant.now();
    db.persist(d);
    return d;
  }

  @Transactional
  public List<Dataset> list(String tenantId) {
    return db.createSelectionQuery(
            "from Dataset where tenantId = ?1 order by createdAt", Dataset.class)
        .setParameter(1, tenantId)
        .getResultList();
  }

  @Transactional
  public Optional<Dataset> find(String tenantId, String id) {
    return Optional.ofNullable(db.find(Dataset.class, id)).filter(d -> d.tenantId.equals(tenantId));
  }
}
