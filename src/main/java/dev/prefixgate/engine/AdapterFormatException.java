package dev.prefixgate.engine;

/**
 * An adapter that must not be served: malformed safetensors, wrong PEFT config, shapes that do not
 * fit the base model, or non-finite values. {@link #field()} names the offending field so the API
 * can report it.
 */
public final class AdapterFormatException extends Exception {
  private final String field;

  public AdapterFormatException(String field, String message) {
    super(field + ": " + message);
    this.field = field;
  }

  public String field() {
    return field;
  }
}
