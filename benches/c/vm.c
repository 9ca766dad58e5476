/* The switch-dispatch bytecode VM of tests/mir/bytecode_vm.mir, opcode for opcode:
 * 0=halt 1=loada 2=loadi 3=add 4=sub 5=mul 6=xor 7=and 8=shr 9=dup 10=swap 11=pushk
 * 12=storea 13=loop 14=drop; wrapping int64 arithmetic (through uint64), shr arithmetic. */
#include <stdint.h>
#include <stdlib.h>

static const uint8_t CODE[22] = {1, 2, 3, 9, 11, 3, 5, 6, 2, 11, 7, 7, 3, 9, 11, 1, 8, 6, 12, 13, 0, 0};

int64_t vm(int64_t n) {
    uint8_t *code = malloc(sizeof CODE);
    int64_t *st = malloc(16 * sizeof(int64_t));
    for (int k = 0; k < 22; k++) code[k] = CODE[k];
    uint64_t pc = 0, sp = 0;
    int64_t acc = 0, i = 0;
    for (;;) {
        uint8_t op = code[pc++];
        switch (op) {
        case 0: free(code); free(st); return acc;
        case 1: st[sp++] = acc; break;
        case 2: st[sp++] = i; break;
        case 3: st[sp - 2] = (int64_t)((uint64_t)st[sp - 2] + (uint64_t)st[sp - 1]); sp--; break;
        case 4: st[sp - 2] = (int64_t)((uint64_t)st[sp - 2] - (uint64_t)st[sp - 1]); sp--; break;
        case 5: st[sp - 2] = (int64_t)((uint64_t)st[sp - 2] * (uint64_t)st[sp - 1]); sp--; break;
        case 6: st[sp - 2] ^= st[sp - 1]; sp--; break;
        case 7: st[sp - 2] &= st[sp - 1]; sp--; break;
        case 8: st[sp - 2] = st[sp - 2] >> (st[sp - 1] & 63); sp--; break;
        case 9: st[sp] = st[sp - 1]; sp++; break;
        case 10: { int64_t t = st[sp - 2]; st[sp - 2] = st[sp - 1]; st[sp - 1] = t; break; }
        case 11: st[sp++] = code[pc++]; break;
        case 12: acc = st[--sp]; break;
        case 13: i++; if (i < n) pc = 0; break;
        case 14: sp--; break;
        default: abort();
        }
    }
}
