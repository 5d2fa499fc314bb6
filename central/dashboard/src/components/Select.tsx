// A labelled drop-down: the one way the dashboard offers a choice among registry entries.

export interface Choice {
  value: string;
  label: string;
}

export function Select({
  label,
  value,
  onChange,
  choices,
  empty,
  required,
  invalid,
}: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  choices: Choice[];
  /** The text of a first, empty choice ("all", "none", "choose…"); no such choice when unset. */
  empty?: string;
  required?: boolean;
  invalid?: boolean;
}) {
  return (
    <label>
      {label}
      <select value={value} required={required} aria-invalid={invalid || undefined} onChange={(e) => onChange(e.target.value)}>
        {empty !== undefined && <option value="">{empty}</option>}
        {choices.map((c) => (
          <option key={c.value} value={c.value}>
            {c.label}
          </option>
        ))}
      </select>
    </label>
  );
}
