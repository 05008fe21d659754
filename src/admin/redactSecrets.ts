/**
 * Masks credentials in free text before it is logged or returned by the API: passwords in URLs
 * (`postgres://app:s3cret@db/x` → `postgres://app:***@db/x`) and `password=…` / `pwd=…` pairs.
 */
export function redactSecrets(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s/]*@/gi, '$1***@') // up to the last @ of the authority
    .replace(/\b(password|passwd|pwd|secret|token)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&]+)/gi, '$1$2***');
}
