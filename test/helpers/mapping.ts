/** Reading field types out of a mapping (generated, or read back from a node). */

type Json = Record<string, any>;

/**
 * The type a dotted path has in a mapping's properties, following objects and
 * multi-fields (`query.text`); undefined when it is not mapped.
 */
export function mappedType(mapping: Json, path: string): string | undefined {
  const parts = path.split('.');
  let props: Json | undefined = mapping.properties;
  for (let i = 0; i < parts.length; i++) {
    const node: Json | undefined = props?.[parts[i]];
    if (!node) return undefined;
    if (i === parts.length - 1) return node.type ?? (node.properties ? 'object' : undefined);
    if (node.properties) props = node.properties;
    else if (node.fields && i === parts.length - 2) return node.fields[parts[i + 1]]?.type;
    else return undefined;
  }
  return undefined;
}
