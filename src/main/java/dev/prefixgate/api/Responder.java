package dev.prefixgate.api;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.prefixgate.adapter.ModelResolver;
import dev.prefixgate.engine.Completion;
import dev.prefixgate.engine.Engine;
import dev.prefixgate.engine.FinishReason;
import dev.prefixgate.engine.ListenerGone;
import dev.prefixgate.engine.TextTokenizer;
import dev.prefixgate.engine.TokenListener;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServerResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * Writes one generation to its HTTP response: SSE chunks as tokens arrive, or one JSON body at the
 * end. Callbacks run on the engine thread; Vert.x response writes are thread-safe and non-blocking.
 * Releases the adapter lease when the generation completes, whatever the outcome.
 */
final class Responder implements TokenListener {
  private final HttpServerResponse response;
  private final ObjectMapper json;
  private final CompletionRequest req;
  private final ModelResolver.Resolved model;
  private final boolean chat;
  private final String tenant;
  private final ApiMetrics metrics;
  private final int promptTokens;
  private final String id;
  private final long created = System.currentTimeMillis() / 1000;
  private final StringBuilder text = new StringBuilder();
  private final List<Integer> tokenIds = new ArrayList<>();
  private final TextTokenizer tokenizer;
  // Log-probabilities not yet sent (streaming: they go out with the next chunk that carries text)
  // or, without streaming, all of them. Chat: entries of "content"; completions: four arrays.
  private final ArrayNode lpContent;
  private final ArrayNode lpTokens;
  private final ArrayNode lpTokenLogprobs;
  private final ArrayNode lpTop;
  private final ArrayNode lpOffsets;
  private int textOffset;
  private long lastTokenNanos;
  private boolean open; // started() ran: headers may be written
  private final List<ObjectNode> early = new ArrayList<>(); // chunks produced before started()
  private Completion earlyCompletion; // a completion that arrived before started()
  private boolean firstToken; // a token arrived
  private ApiMetrics.AdapterLoad load; // this request's adapter gauges, from started() on

  Responder(
      HttpServerResponse response,
      ObjectMapper json,
      CompletionRequest req,
      ModelResolver.Resolved model,
      boolean chat,
      String tenant,
      ApiMetrics metrics,
      int promptTokens,
      TextTokenizer tokenizer) {
    this.response = response;
    this.json = json;
    this.req = req;
    this.model = model;
    this.chat = chat;
    this.tenant = tenant;
    this.metrics = metrics;
    this.promptTokens = promptTokens;
    this.id = (chat ? "chatcmpl-" : "cmpl-") + UUID.randomUUID().toString().replace("-", "");
    this.tokenizer = tokenizer;
    this.lpContent = json.createArrayNode();
    this.lpTokens = json.createArrayNode();
    this.lpTokenLogprobs = json.createArrayNode();
    this.lpTop = json.createArrayNode();
    this.lpOffsets = json.createArrayNode();
  }

  /**
   * Called once the engine accepted the request: opens the stream and wires disconnects. The engine
   * may already have produced tokens by then; they wait in {@link #early} so that the headers and
   * the role chunk go out first.
   */
  synchronized void started(Engine.Handle handle) {
    response.closeHandler(v -> handle.cancel());
    load = metrics.adapterAdmitted(tenant, model.model());
    if (firstToken) load.started();
    open = true;
    if (response.closed()) {
      // The client left before the engine took the request: the close handler will never fire,
      // so cancel here. An ordinary disconnect, not a 500 (the soak found it counted as one).
      handle.cancel();
      if (earlyCompletion != null) onComplete(earlyCompletion);
      return;
    }
    if (!req.stream()) {
      if (earlyCompletion != null) onComplete(earlyCompletion);
      return;
    }
    response
        .setStatusCode(200)
        .setChunked(true)
        .putHeader("Content-Type", "text/event-stream; charset=utf-8")
        .putHeader("Cache-Control", "no-cache")
        .putHeader("X-Accel-Buffering", "no");
    try {
      if (chat) {
        ObjectNode chunk = chunk();
        ObjectNode choice = choice(chunk);
        choice.putObject("delta").put("role", "assistant").put("content", "");
        choice.putNull("finish_reason");
        send(chunk);
      }
      for (ObjectNode chunk : early) send(chunk);
      early.clear();
    } catch (ListenerGone e) {
      handle.cancel(); // it left between the check above and these writes
    }
    if (earlyCompletion != null) onComplete(earlyCompletion);
  }

  @Override
  public synchronized void onToken(
      int tokenId, String piece, float logprob, int[] topIds, float[] topLogprobs) {
    if (req.logprobs()) record(tokenId, logprob, topIds, topLogprobs);
    onToken(tokenId, piece, logprob);
  }

  /** One position's log-probabilities, in the request's API format. */
  private void record(int tokenId, float logprob, int[] topIds, float[] topLogprobs) {
    String token = tokenText(tokenId);
    if (chat) {
      ObjectNode e = lpContent.addObject().put("token", token).put("logprob", logprob);
      bytes(e, tokenId);
      ArrayNode top = e.putArray("top_logprobs");
      for (int i = 0; i < topIds.length; i++) {
        ObjectNode alt = top.addObject().put("token", tokenText(topIds[i]));
        alt.put("logprob", topLogprobs[i]);
        bytes(alt, topIds[i]);
      }
    } else {
      lpTokens.add(token);
      lpTokenLogprobs.add(logprob);
      ObjectNode top = json.createObjectNode();
      for (int i = 0; i < topIds.length; i++) top.put(tokenText(topIds[i]), topLogprobs[i]);
      lpTop.add(top);
      lpOffsets.add(textOffset);
      textOffset += token.length();
    }
  }

  private String tokenText(int tokenId) {
    return new String(tokenizer.bytes(tokenId), java.nio.charset.StandardCharsets.UTF_8);
  }

  private void bytes(ObjectNode entry, int tokenId) {
    ArrayNode b = entry.putArray("bytes");
    for (byte x : tokenizer.bytes(tokenId)) b.add(x & 0xff);
  }

  /** Moves the recorded log-probabilities into a choice (and starts collecting anew). */
  private void attachLogprobs(ObjectNode choice) {
    if (!req.logprobs()) return;
    if (chat) {
      choice.putObject("logprobs").set("content", lpContent.deepCopy());
      lpContent.removeAll();
    } else {
      ObjectNode lp = choice.putObject("logprobs");
      lp.set("tokens", lpTokens.deepCopy());
      lp.set("token_logprobs", lpTokenLogprobs.deepCopy());
      lp.set("top_logprobs", lpTop.deepCopy());
      lp.set("text_offset", lpOffsets.deepCopy());
      lpTokens.removeAll();
      lpTokenLogprobs.removeAll();
      lpTop.removeAll();
      lpOffsets.removeAll();
    }
  }

  @Override
  public synchronized void onToken(int tokenId, String piece, float logprob) {
    if (!firstToken) {
      firstToken = true;
      if (load != null) load.started();
    }
    long now = System.nanoTime();
    if (lastTokenNanos != 0) metrics.interToken(now - lastTokenNanos);
    lastTokenNanos = now;
    tokenIds.add(tokenId);
    if (!req.stream()) {
      text.append(piece);
      return;
    }
    if (piece.isEmpty() && !req.returnTokenIds()) return;
    ObjectNode chunk = chunk();
    ObjectNode choice = choice(chunk);
    content(choice, piece);
    attachLogprobs(choice);
    choice.putNull("finish_reason");
    if (req.returnTokenIds()) choice.putArray("token_ids").add(tokenId);
    send(chunk);
  }

  @Override
  public synchronized void onComplete(Completion c) {
    if (!open) {
      earlyCompletion = c;
      return;
    }
    model.close();
    metrics.completed(tenant, model.model(), c, promptTokens);
    load.finished(firstToken);
    if (response.closed()) return; // the client left: nobody to write to
    if (req.stream()) {
      finishStream(c);
    } else {
      finishJson(c);
    }
  }

  private void finishStream(Completion c) {
    if (!c.trailingText().isEmpty()) {
      ObjectNode chunk = chunk();
      ObjectNode choice = choice(chunk);
      content(choice, c.trailingText());
      attachLogprobs(choice);
      choice.putNull("finish_reason");
      send(chunk);
    }
    ObjectNode last = chunk();
    ObjectNode choice = choice(last);
    if (chat) choice.putObject("delta");
    else choice.put("text", "");
    // Positions whose text was held back to the end (a stop sequence, a split character).
    if (!lpContent.isEmpty() || !lpTokens.isEmpty()) attachLogprobs(choice);
    choice.put("finish_reason", reason(c));
    if (c.reason() == FinishReason.ERROR)
      last.putObject("error").put("message", c.error()).put("type", "server_error");
    send(last);
    if (req.includeUsage()) {
      ObjectNode usage = chunk();
      usage.putArray("choices");
      usage.set("usage", usage(c));
      send(usage);
    }
    if (!response.closed()) response.end("data: [DONE]\n\n");
  }

  private void finishJson(Completion c) {
    if (response.closed()) return;
    if (c.reason() == FinishReason.ERROR && tokenIds.isEmpty()) {
      OpenAiRoutes.writeError(
          response, new ApiError(500, "server_error", "generation_failed", null, c.error()));
      return;
    }
    text.append(c.trailingText());
    ObjectNode out = json.createObjectNode();
    out.put("id", id)
        .put("object", chat ? "chat.completion" : "text_completion")
        .put("created", created)
        .put("model", model.model());
    ObjectNode choice = out.putArray("choices").addObject().put("index", 0);
    if (chat) choice.putObject("message").put("role", "assistant").put("content", text.toString());
    else choice.put("text", text.toString());
    if (req.logprobs()) attachLogprobs(choice);
    else choice.putNull("logprobs");
    choice.put("finish_reason", reason(c));
    if (req.returnTokenIds()) {
      ArrayNode ids = choice.putArray("token_ids");
      tokenIds.forEach(ids::add);
    }
    out.set("usage", usage(c));
    response.setStatusCode(200).putHeader("Content-Type", "application/json").end(out.toString());
  }

  private ObjectNode chunk() {
    ObjectNode chunk = json.createObjectNode();
    chunk
        .put("id", id)
        .put("object", chat ? "chat.completion.chunk" : "text_completion")
        .put("created", created)
        .put("model", model.model());
    return chunk;
  }

  private ObjectNode choice(ObjectNode chunk) {
    ObjectNode choice = chunk.putArray("choices").addObject().put("index", 0);
    choice.putNull("logprobs");
    return choice;
  }

  private void content(ObjectNode choice, String piece) {
    if (chat) choice.putObject("delta").put("content", piece);
    else choice.put("text", piece);
  }

  private ObjectNode usage(Completion c) {
    return json.createObjectNode()
        .put("prompt_tokens", c.promptTokens())
        .put("completion_tokens", c.completionTokens())
        .put("total_tokens", c.promptTokens() + c.completionTokens());
  }

  private static String reason(Completion c) {
    return switch (c.reason()) {
      case STOP -> "stop";
      case LENGTH -> "length";
      case ERROR -> "error";
      case CANCELLED -> "cancelled";
    };
  }

  private void send(ObjectNode chunk) {
    if (!open) {
      early.add(chunk);
      return;
    }
    if (response.closed() || response.ended()) throw new ListenerGone("client disconnected");
    response.write(Buffer.buffer("data: " + chunk + "\n\n"));
  }
}
