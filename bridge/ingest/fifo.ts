/** A FIFO whose shift is O(1) (Array.prototype.shift is O(n), quadratic for a long queue). */
export class Fifo<T> {
  private items: (T | undefined)[] = []
  private head = 0
  get length(): number {
    return this.items.length - this.head
  }
  push(x: T): void {
    this.items.push(x)
  }
  at(i: number): T | undefined {
    return this.items[this.head + i]
  }
  shift(): T | undefined {
    const x = this.items[this.head]
    this.items[this.head++] = undefined
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return x
  }
}
