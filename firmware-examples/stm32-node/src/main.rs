//! The node's firmware. On the microcontroller (`cargo build -p neosens-stm32-node --target
//! thumbv7em-none-eabihf --release`): a Nucleo-L476RG with an RN2483 on USART1 (PA9 TX, PA10
//! RX, 57600 baud), one uplink a minute. On the host (`cargo run -p neosens-stm32-node`): the
//! same code prints the RN2483 commands of three uplinks, to see what the radio would send.
//!
//! The readings come from `read_sensors`; on this board they are a slowly drifting stand-in —
//! wire an SHT3x/MCP9808 driver there for a real room.

#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

use neosens_stm32_node::{AbpSession, MAX_FRAME, Node, Readings, rn2483_tx};

/// The session flashed into this node (register it in neosens-central with the same values).
const SESSION: AbpSession = AbpSession {
    dev_addr: 0x2601_1BDA,
    nwk_s_key: [
        0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c,
    ],
    app_s_key: [
        0x3c, 0x4f, 0xcf, 0x09, 0x88, 0x15, 0xf7, 0xab, 0xa6, 0xd2, 0xae, 0x28, 0x16, 0x15, 0x7e, 0x2b,
    ],
};

fn read_sensors(round: u32) -> Readings {
    let drift = (round % 40) as f32 * 0.1;
    Readings {
        temperature: 20.5 + drift,
        humidity: 48.0 - drift,
        luminosity: 300 + (round % 100) as u16,
        co2: Some(450),
    }
}

/// One uplink: the RN2483 command bytes into `line`, their length.
fn next_command(node: &mut Node, round: u32, line: &mut [u8; 2 * MAX_FRAME + 16]) -> Option<usize> {
    let mut frame = [0u8; MAX_FRAME];
    let n = node.uplink(&read_sensors(round), &mut frame).ok()?;
    rn2483_tx(&frame[..n], line)
}

// Register access and the heap's set-up are what `unsafe` is for on a bare microcontroller;
// each use says why it holds.
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod mcu {
    use core::mem::MaybeUninit;
    use core::ptr::{read_volatile, write_volatile};

    use cortex_m_rt::entry;
    use embedded_alloc::LlffHeap as Heap;
    use panic_halt as _;

    use super::*;

    #[global_allocator]
    static HEAP: Heap = Heap::empty();
    const HEAP_BYTES: usize = 4096;

    // STM32L4 registers (RM0351). After reset the core runs from MSI at 4 MHz.
    const RCC: usize = 0x4002_1000;
    const RCC_AHB2ENR: usize = RCC + 0x4C;
    const RCC_APB2ENR: usize = RCC + 0x60;
    const GPIOA: usize = 0x4800_0000;
    const GPIOA_MODER: usize = GPIOA;
    const GPIOA_AFRH: usize = GPIOA + 0x24;
    const USART1: usize = 0x4001_3800;
    const USART1_CR1: usize = USART1;
    const USART1_BRR: usize = USART1 + 0x0C;
    const USART1_ISR: usize = USART1 + 0x1C;
    const USART1_TDR: usize = USART1 + 0x28;
    const CLOCK_HZ: u32 = 4_000_000;
    const BAUD: u32 = 57_600;

    fn modify(addr: usize, clear: u32, set: u32) {
        // SAFETY: fixed, documented peripheral register addresses of the STM32L476; this
        // single-threaded firmware is their only user.
        unsafe { write_volatile(addr as *mut u32, (read_volatile(addr as *const u32) & !clear) | set) }
    }

    fn usart1_init() {
        modify(RCC_AHB2ENR, 0, 1 << 0); // GPIOA clock
        modify(RCC_APB2ENR, 0, 1 << 14); // USART1 clock
        modify(GPIOA_MODER, 0b1111 << 18, 0b1010 << 18); // PA9, PA10: alternate function
        modify(GPIOA_AFRH, 0xFF << 4, 0x77 << 4); // AF7 = USART1
        modify(USART1_BRR, 0xFFFF, CLOCK_HZ / BAUD);
        modify(USART1_CR1, 0, (1 << 3) | (1 << 2) | 1); // TE, RE, UE
    }

    fn usart1_write(bytes: &[u8]) {
        for &b in bytes {
            // SAFETY: as in `modify`.
            while unsafe { read_volatile(USART1_ISR as *const u32) } & (1 << 7) == 0 {}
            unsafe { write_volatile(USART1_TDR as *mut u32, u32::from(b)) }
        }
    }

    #[entry]
    fn main() -> ! {
        static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];
        // SAFETY: runs once, before any allocation; cortex-m-rt's `entry` gives this function
        // sole access to its `static mut` (turned into a `&'static mut`).
        unsafe { HEAP.init(HEAP_MEM.as_mut_ptr() as usize, HEAP_BYTES) }
        usart1_init();
        // Radio mode: the LoRaWAN stack of the module is paused, frames are ours.
        usart1_write(b"mac pause\r\n");
        cortex_m::asm::delay(CLOCK_HZ / 10);
        let mut node = Node::new(SESSION, 0);
        let mut round = 0;
        loop {
            let mut line = [0u8; 2 * MAX_FRAME + 16];
            if let Some(n) = next_command(&mut node, round, &mut line) {
                usart1_write(&line[..n]);
            }
            round = round.wrapping_add(1);
            cortex_m::asm::delay(60 * CLOCK_HZ); // a minute between uplinks
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    let mut node = Node::new(SESSION, 0);
    for round in 0..3 {
        let mut line = [0u8; 2 * MAX_FRAME + 16];
        match next_command(&mut node, round, &mut line) {
            Some(n) => print!("{}", String::from_utf8_lossy(&line[..n])),
            None => eprintln!("uplink {round} could not be built"),
        }
    }
}
