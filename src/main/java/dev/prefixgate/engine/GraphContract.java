package dev.prefixgate.engine;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The one place that knows the ONNX graph's contract: tensor names, dtypes and KV layout. The
 * contract itself (every input and output with its shape) is written out once, for users, in {@code
 * docs/engine.md} ("Model directory contract").
 *
 * <p>Logits come in two layouts, told apart by the declared second dimension of {@code logits}: a
 * symbolic one means every position (what optimum exports), a fixed 1 means the graph runs the LM
 * head on position seq-1 only (what {@code prefixgate_trainer.export} writes). The engine
 * right-aligns every prompt, so position seq-1 is each row's last token either way.
 */
public final class GraphContract {
  public static final String INPUT_IDS = "input_ids";
  public static final String ATTENTION_MASK = "attention_mask";
  public static final String LOGITS = "logits";
  public static final String SEQLENS_K = "seqlens_k";
  public static final String TOTAL_SEQUENCE_LENGTH = "total_sequence_length";
  public static final String BLOCK_TABLE = "block_table";

  /** Model metadata key {@code prefixgate_trainer.slot_graph} writes, and the append value. */
  public static final String KV_LAYOUT_METADATA = "prefixgate.kv_layout";

  public static final String APPEND_LAYOUT = "prefixgate-append-1";

  public static final String PAGED_LAYOUT = "prefixgate-paged-1";

  /** How the graph takes and returns the KV cache. */
  public enum KvLayout {
    /**
     * {@code past [batch, n_head, past, head_dim]} with an {@code attention_mask}, and {@code
     * present = concat(past, new)}: every run reads and rewrites the whole KV.
     */
    CONCAT,
    /**
     * {@code past} and {@code present} both {@code [batch, n_head, capacity, head_dim]}, bound to
     * the same memory; {@code seqlens_k} (each row's length after the run, minus 1) and {@code
     * total_sequence_length} replace the mask. Each row's tokens sit at columns [0, len) of its
     * slot and the graph writes only the new columns (what {@code prefixgate_trainer.slot_graph}
     * writes, with GroupQueryAttention). A run appending several tokens to a past takes one row.
     */
    SLOTS,
    /**
     * {@code past [batch, n_head, capacity, head_dim]} is the slots' arena, read once; {@code
     * attention_mask [batch, capacity + seq]} marks each row's live columns [0, len) and the run's
     * new tokens; {@code present [batch, n_head, seq, head_dim]} is only the new tokens' K/V, which
     * the engine writes into each row's slot at [len, len + seq) (what {@code
     * prefixgate_trainer.slot_graph --attention append} writes, with standard ops). Model metadata
     * {@value #KV_LAYOUT_METADATA} = {@value #APPEND_LAYOUT} names it.
     */
    APPEND,
    /**
     * {@code past [n_head, pages, page_tokens, head_dim]} is a pool of pages, read through {@code
     * block_table [batch, pages_per_row]} (each row's pages in token order); {@code attention_mask
     * [batch, pages_per_row * page_tokens + seq]} marks each row's live columns [0, len) and the
     * run's new tokens; {@code present [batch, n_head, seq, head_dim]} is only the new tokens' K/V,
     * which the engine writes into the rows' pages (what {@code prefixgate_trainer.slot_graph
     * --attention paged} writes). The page size is the engine's choice. Model metadata {@value
     * #KV_LAYOUT_METADATA} = {@value #PAGED_LAYOUT} names it.
     */
    PAGED;

    /** Whether each row keeps its KV in a fixed slot of one arena (slots or append). */
    public boolean slotted() {
      return this == SLOTS || this == APPEND;
    }
  }

  /** Which positions the graph's {@code logits} output covers. */
  public enum LogitsLayout {
    /** {@code [batch, seq, vocab]}: the engine reads the last position of each row. */
    ALL_POSITIONS,
    /** {@code [batch, 1, vocab]}: the LM head ran on position seq-1 only. */
    LAST_POSITION
  }

  private final ModelConfig config;
  private final String[] pastKeys;
  private final String[] pastValues;
  private final String[] presentKeys;
  private final String[] presentValues;
  private LogitsLayout logitsLayout = LogitsLayout.ALL_POSITIONS;
  private KvLayout kvLayout = KvLayout.CONCAT;

  public GraphContract(ModelConfig config) {
    this.config = config;
    int n = config.nLayer();
    pastKeys = new String[n];
    pastValues = new String[n];
    presentKeys = new String[n];
    presentValues = new String[n];
    for (int i = 0; i < n; i++) {
      pastKeys[i] = "past_key_values." + i + ".key";
      pastValues[i] = "past_key_values." + i + ".value";
      presentKeys[i] = "present." + i + ".key";
      presentValues[i] = "present." + i + ".value";
    }
  }

  public String pastKey(int layer) {
    return pastKeys[layer];
  }

  public String pastValue(int layer) {
    return pastValues[layer];
  }

  public String presentKey(int layer) {
    return presentKeys[layer];
  }

  public String presentValue(int layer) {
    return presentValues[layer];
  }

  /** The layout {@link #check} found; all positions until then. */
  public LogitsLayout logitsLayout() {
    return logitsLayout;
  }

  /** The KV layout {@link #check} found; concat until then. */
  public KvLayout kvLayout() {
    return kvLayout;
  }

  /** Logits positions a run with {@code seq} input columns writes per row. */
  public int logitsPositions(int seq) {
    return logitsLayout == LogitsLayout.LAST_POSITION ? 1 : seq;
  }

  /** The layout a declared {@code logits} shape means, or null when it is neither. */
  static LogitsLayout layoutOf(long[] shape) {
    if (shape.length != 3) return null;
    return shape[1] == 1 ? LogitsLayout.LAST_POSITION : LogitsLayout.ALL_POSITIONS;
  }

  /**
   * Checks the session's inputs and outputs against this contract and {@code config.json}.
   *
   * @throws EngineException naming every missing or mismatched tensor
   */
  public void check(OrtSession session) {
    List<String> problems = new ArrayList<>();
    try {
      Map<String, NodeInfo> in = session.getInputInfo();
      Map<String, NodeInfo> out = session.getOutputInfo();
      expect(problems, "input", in, INPUT_IDS, OnnxJavaType.INT64, 2, -1);
      boolean slots = in.containsKey(SEQLENS_K) && !in.containsKey(ATTENTION_MASK);
      String layoutName = session.getMetadata().getCustomMetadata().get(KV_LAYOUT_METADATA);
      boolean append = APPEND_LAYOUT.equals(layoutName);
      boolean paged = PAGED_LAYOUT.equals(layoutName);
      if (paged) {
        kvLayout = KvLayout.PAGED;
        expect(problems, "input", in, ATTENTION_MASK, OnnxJavaType.INT64, 2, -1);
        expect(problems, "input", in, BLOCK_TABLE, OnnxJavaType.INT64, 2, -1);
      } else if (append) {
        kvLayout = KvLayout.APPEND;
        expect(problems, "input", in, ATTENTION_MASK, OnnxJavaType.INT64, 2, -1);
      } else if (slots) {
        kvLayout = KvLayout.SLOTS;
        expect(problems, "input", in, SEQLENS_K, OnnxJavaType.INT32, 1, -1);
        expect(problems, "input", in, TOTAL_SEQUENCE_LENGTH, OnnxJavaType.INT32, 0, -1);
      } else {
        expect(problems, "input", in, ATTENTION_MASK, OnnxJavaType.INT64, 2, -1);
      }
      if (expect(problems, "output", out, LOGITS, OnnxJavaType.FLOAT, 3, config.vocabSize())) {
        long[] shape = ((TensorInfo) out.get(LOGITS).getInfo()).getShape();
        if (shape[1] > 1) {
          problems.add("output 'logits' has a fixed sequence dimension " + shape[1]);
        } else {
          logitsLayout = layoutOf(shape);
        }
        if ((slots || append || paged) && logitsLayout != LogitsLayout.LAST_POSITION) {
          problems.add("a slot-layout graph must write logits [batch, 1, vocab]");
        }
      }
      for (int i = 0; i < config.nLayer(); i++) {
        for (String name : new String[] {pastKeys[i], pastValues[i]}) {
          expectKv(problems, "input", in, name, paged ? 0 : 1);
        }
        for (String name : new String[] {presentKeys[i], presentValues[i]}) {
          expectKv(problems, "output", out, name, 1);
        }
      }
      String extra = "past_key_values." + config.nLayer() + ".key";
      if (in.containsKey(extra)) {
        problems.add(
            "graph has input '" + extra + "' but config.json says n_layer=" + config.nLayer());
      }
      for (String name : in.keySet()) {
        boolean known =
            kvLayout == KvLayout.SLOTS
                ? name.equals(SEQLENS_K) || name.equals(TOTAL_SEQUENCE_LENGTH)
                : name.equals(ATTENTION_MASK) || (paged && name.equals(BLOCK_TABLE));
        if (!name.equals(INPUT_IDS) && !known && !name.startsWith("past_key_values.")) {
          problems.add("graph has unexpected input '" + name + "' (e.g. position_ids)");
        }
      }
    } catch (OrtException e) {
      throw new EngineException("cannot read the graph's inputs and outputs", e);
    }
    if (!problems.isEmpty()) {
      throw new EngineException("model.onnx does not match the contract: " + problems);
    }
  }

  /** A KV tensor of rank 4 with its heads on axis {@code headAxis} and head_dim last. */
  private void expectKv(
      List<String> problems, String kind, Map<String, NodeInfo> nodes, String n, int headAxis) {
    if (!expect(problems, kind, nodes, n, OnnxJavaType.FLOAT, 4, -1)) return;
    long[] shape = ((TensorInfo) nodes.get(n).getInfo()).getShape();
    if (shape[headAxis] >= 0 && shape[headAxis] != config.nHead()) {
      problems.add(
          kind + " '" + n + "' has " + shape[headAxis] + " heads, config has " + config.nHead());
    }
    if (shape[3] >= 0 && shape[3] != config.headDim()) {
      problems.add(
          kind + " '" + n + "' has head_dim " + shape[3] + ", config gives " + config.headDim());
    }
  }

  /** Returns true when the tensor exists with the right dtype and rank. */
  private static boolean expect(
      List<String> problems,
      String kind,
      Map<String, NodeInfo> nodes,
      String name,
      OnnxJavaType type,
      int rank,
      long lastDim) {
    NodeInfo node = nodes.get(name);
    if (node == null) {
      problems.add("missing " + kind + " '" + name + "'");
      return false;
    }
    if (!(node.getInfo() instanceof TensorInfo info)) {
      problems.add(kind + " '" + name + "' is not a tensor");
      return false;
    }
    if (info.type != type) {
      problems.add(kind + " '" + name + "' is " + info.type + ", expected " + type);
      return false;
    }
    long[] shape = info.getShape();
    if (shape.length != rank) {
      problems.add(kind + " '" + name + "' has rank " + shape.length + ", expected " + rank);
      return false;
    }
    if (lastDim > 0 && shape[rank - 1] >= 0 && shape[rank - 1] != lastDim) {
      problems.add(
          kind + " '" + name + "' last dimension " + shape[rank - 1] + ", expected " + lastDim);
      return false;
    }
    return true;
  }
}
