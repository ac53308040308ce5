//! A generated product catalog: the same 12,000 products on every machine, no network.
//!
//! Products belong to categories, and categories to departments. Titles are built the way
//! marketplace titles are (`"Lumora Adjustable Laptop Stand for Desk"`), so a keyword search over
//! them returns what a real one would: the products of one category, plus the accessories and
//! replacement parts whose titles name that category (`"Replacement Rubber Feet for Laptop
//! Stand"`). A few of every category's products are such parts, filed under the category by their
//! sellers — the false positives a pipeline's judge has to remove.
//!
//! Review counts differ by an order of magnitude between categories (phone cases gather far more
//! reviews than laptop stands), which is what lets a ranking that does not normalize them pick a
//! phone case once one gets that far.

use serde::Serialize;

/// How many products [`Catalog::generate`] makes by default.
pub const DEFAULT_SIZE: usize = 12_000;

/// One product.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Product {
    /// An ASIN-like id: `B0` and eight characters of `[0-9A-Z]`.
    pub asin: String,
    pub title: String,
    pub category: &'static str,
    pub department: &'static str,
    pub price: f64,
    pub rating: f64,
    pub reviews: u32,
}

impl Product {
    /// Whether the title says it is a replacement part or an add-on rather than the thing itself.
    pub fn is_part(&self) -> bool {
        let t = self.title.to_lowercase();
        PART_WORDS.iter().any(|w| t.contains(w))
    }
}

/// Words a title uses for parts and add-ons.
const PART_WORDS: [&str; 6] = [
    "replacement",
    " feet",
    "hinge",
    "carry bag",
    "sleeve",
    "cable",
];

/// A category: what its titles are made of, its price range and how many reviews it gathers.
pub struct Category {
    pub name: &'static str,
    pub department: &'static str,
    /// What a product of the category is called; every title contains one of them.
    pub nouns: &'static [&'static str],
    pub adjectives: &'static [&'static str],
    pub features: &'static [&'static str],
    /// Parts sold under the category (`"Replacement {part} for {noun}"`).
    parts: &'static [&'static str],
    price: (f64, f64),
    max_reviews: u32,
    /// Share of the catalog, in percent.
    weight: usize,
}

/// Every category, with the shares that add up to the catalog.
pub static CATEGORIES: &[Category] = &[
    Category {
        name: "Laptop Stands",
        department: "Electronics Accessories",
        nouns: &["Laptop Stand", "Laptop Riser", "Notebook Stand"],
        adjectives: &[
            "Adjustable",
            "Aluminum",
            "Ergonomic",
            "Foldable",
            "Portable",
            "Ventilated",
        ],
        features: &[
            "for Desk",
            "for 10-17\" Laptops",
            "with Heat Vent",
            "for MacBook",
        ],
        parts: &["Rubber Feet", "Hinge Screw Kit", "Base Plate"],
        price: (14.0, 90.0),
        max_reviews: 12_000,
        weight: 12,
    },
    Category {
        name: "Laptop Accessories",
        department: "Electronics Accessories",
        nouns: &[
            "Laptop Stand Replacement Feet",
            "Laptop Stand Carry Bag",
            "Laptop Sleeve",
            "Laptop Cooling Pad",
        ],
        adjectives: &["Universal", "Padded", "Slim", "Silicone"],
        features: &["(4 pack)", "for 13-15\" Laptops", "Black", "Grey"],
        parts: &["Cable"],
        price: (4.0, 35.0),
        max_reviews: 6_000,
        weight: 5,
    },
    Category {
        name: "Phone Cases",
        department: "Electronics Accessories",
        nouns: &["Phone Case"],
        adjectives: &[
            "Shockproof",
            "Slim",
            "Clear",
            "Magnetic",
            "Leather",
            "Rugged",
        ],
        features: &[
            "for iPhone 15",
            "for Galaxy S24",
            "for Pixel 8",
            "with Card Holder",
        ],
        parts: &["Camera Lens Cover"],
        price: (6.0, 40.0),
        max_reviews: 90_000,
        weight: 14,
    },
    Category {
        name: "Phone Stands",
        department: "Electronics Accessories",
        nouns: &["Phone Stand", "Phone Holder"],
        adjectives: &["Adjustable", "Foldable", "Aluminum", "Weighted"],
        features: &["for Desk", "for Video Calls", "for iPhone and Android"],
        parts: &["Suction Base"],
        price: (7.0, 30.0),
        max_reviews: 30_000,
        weight: 6,
    },
    Category {
        name: "Tablet Stands",
        department: "Electronics Accessories",
        nouns: &["Tablet Stand", "iPad Stand"],
        adjectives: &["Adjustable", "Aluminum", "Swivel"],
        features: &["for Desk", "for 4-13\" Tablets", "for Kitchen"],
        parts: &["Hinge Knob"],
        price: (10.0, 60.0),
        max_reviews: 15_000,
        weight: 4,
    },
    Category {
        name: "Keyboards",
        department: "Electronics Accessories",
        nouns: &["Mechanical Keyboard", "Wireless Keyboard"],
        adjectives: &["Compact", "Backlit", "Ergonomic", "Quiet"],
        features: &["for Mac and Windows", "with Numeric Keypad", "75% Layout"],
        parts: &["Keycap Set"],
        price: (20.0, 180.0),
        max_reviews: 25_000,
        weight: 8,
    },
    Category {
        name: "USB-C Hubs",
        department: "Electronics Accessories",
        nouns: &["USB-C Hub", "USB-C Dock"],
        adjectives: &["7-in-1", "Aluminum", "Portable"],
        features: &["with 4K HDMI", "with 100W PD", "for MacBook"],
        parts: &["Cable"],
        price: (15.0, 120.0),
        max_reviews: 20_000,
        weight: 7,
    },
    Category {
        name: "Monitor Arms",
        department: "Office Products",
        nouns: &["Monitor Arm", "Dual Monitor Stand", "Monitor Mount"],
        adjectives: &["Gas Spring", "Adjustable", "Heavy Duty"],
        features: &["for 13-32\" Screens", "with Clamp", "VESA 75/100"],
        parts: &["VESA Plate", "Gas Spring"],
        price: (25.0, 180.0),
        max_reviews: 15_000,
        weight: 8,
    },
    Category {
        name: "Desk Lamps",
        department: "Office Products",
        nouns: &["Desk Lamp", "LED Desk Lamp", "Architect Lamp"],
        adjectives: &["Dimmable", "Eye-Caring", "Clamp-On", "Touch"],
        features: &["with USB Port", "for Home Office", "5 Color Modes"],
        parts: &["LED Bulb", "Lamp Clamp"],
        price: (12.0, 90.0),
        max_reviews: 30_000,
        weight: 8,
    },
    Category {
        name: "Headphones",
        department: "Electronics",
        nouns: &[
            "Wireless Headphones",
            "Over-Ear Headphones",
            "Noise Cancelling Headphones",
        ],
        adjectives: &["Bluetooth", "Foldable", "Studio"],
        features: &["40h Playtime", "with Microphone", "Hi-Res Audio"],
        parts: &["Ear Pads", "Headband Cushion"],
        price: (20.0, 350.0),
        max_reviews: 60_000,
        weight: 10,
    },
    Category {
        name: "Water Bottles",
        department: "Sports & Outdoors",
        nouns: &["Water Bottle", "Insulated Bottle", "Sports Bottle"],
        adjectives: &["Stainless Steel", "BPA-Free", "Leakproof", "Vacuum"],
        features: &["32 oz", "with Straw Lid", "Keeps Cold 24h"],
        parts: &["Lid", "Straw Set"],
        price: (8.0, 50.0),
        max_reviews: 40_000,
        weight: 9,
    },
    Category {
        name: "Yoga Mats",
        department: "Sports & Outdoors",
        nouns: &["Yoga Mat", "Exercise Mat"],
        adjectives: &["Non-Slip", "Extra Thick", "Eco-Friendly", "TPE"],
        features: &["with Carrying Strap", "72\" x 24\"", "6mm"],
        parts: &["Carry Strap"],
        price: (12.0, 90.0),
        max_reviews: 25_000,
        weight: 9,
    },
];

pub const BRANDS: [&str; 16] = [
    "Lumora", "Kestrel", "Vantix", "Orbly", "Nuvio", "Packwell", "Zentro", "Halden", "Brisa",
    "Corvid", "Tallis", "Qubi", "Mireo", "Ostara", "Fenwick", "Ardent",
];

/// The category named `name`.
pub fn category(name: &str) -> Option<&'static Category> {
    CATEGORIES.iter().find(|c| c.name == name)
}

/// The names of the categories in `department`.
pub fn department_categories(department: &str) -> Vec<&'static str> {
    CATEGORIES
        .iter()
        .filter(|c| c.department == department)
        .map(|c| c.name)
        .collect()
}

/// SplitMix64: a small, well-known generator, so the catalog is the same everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The generated products.
pub struct Catalog {
    pub products: Vec<Product>,
}

impl Catalog {
    /// `size` products from `seed`; the same arguments give the same catalog.
    pub fn generate(seed: u64, size: usize) -> Catalog {
        let mut rng = Rng::new(seed);
        let total_weight: usize = CATEGORIES.iter().map(|c| c.weight).sum();
        let mut products = Vec::with_capacity(size);
        for category in CATEGORIES {
            let count = size * category.weight / total_weight;
            for _ in 0..count {
                products.push(product(&mut rng, category));
            }
        }
        // Shuffle (Fisher-Yates) so that search results are not grouped by category.
        for i in (1..products.len()).rev() {
            products.swap(i, rng.below(i + 1));
        }
        Catalog { products }
    }

    /// The products whose title contains any of `keywords` (case-insensitive), best first: more
    /// keywords matched, then more reviews. Returns at most `limit` of them, and how many matched.
    pub fn search(&self, keywords: &[String], limit: usize) -> (Vec<&Product>, usize) {
        let keywords: Vec<String> = keywords.iter().map(|k| k.to_lowercase()).collect();
        let mut hits: Vec<(usize, &Product)> = self
            .products
            .iter()
            .filter_map(|p| {
                let title = p.title.to_lowercase();
                let matched = keywords
                    .iter()
                    .filter(|k| title.contains(k.as_str()))
                    .count();
                (matched > 0).then_some((matched, p))
            })
            .collect();
        let total = hits.len();
        hits.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.reviews.cmp(&a.1.reviews)));
        hits.truncate(limit);
        (hits.into_iter().map(|(_, p)| p).collect(), total)
    }

    /// The products of `category` that are the thing itself (not parts), cheapest first.
    pub fn in_category(&self, category: &str) -> Vec<&Product> {
        let mut found: Vec<&Product> = self
            .products
            .iter()
            .filter(|p| p.category == category && !p.is_part())
            .collect();
        found.sort_by(|a, b| a.price.total_cmp(&b.price));
        found
    }
}

fn product(rng: &mut Rng, category: &'static Category) -> Product {
    let brand = rng.pick(&BRANDS);
    let noun = rng.pick(category.nouns);
    // About one product in twenty-five is a part filed under the category by its seller.
    let (lo, hi) = category.price;
    // Prices are log-uniform in the category's range; ratings lean high, as marketplaces' do.
    let mut price = lo * (hi / lo).powf(rng.unit());
    let title = match rng.below(25) {
        0 => {
            let part = rng.pick(category.parts);
            price = (price * 0.35).max(3.0);
            format!("{brand} Replacement {part} for {noun}")
        }
        // One product in twenty-five is a premium model, priced 2-5x the category's usual top.
        1 => {
            let feature = rng.pick(category.features);
            price = hi * (2.0 + 3.0 * rng.unit());
            format!("{brand} Pro {noun} {feature}")
        }
        _ => {
            let adjective = rng.pick(category.adjectives);
            let feature = rng.pick(category.features);
            format!("{brand} {adjective} {noun} {feature}")
        }
    };
    let rating = 5.0 - 2.6 * rng.unit() * rng.unit();
    // Most products have few reviews, a few have very many.
    let reviews = (f64::from(category.max_reviews) * rng.unit().powi(3)) as u32;
    Product {
        asin: asin(rng),
        title,
        category: category.name,
        department: category.department,
        price: ((price * 100.0).round() - 1.0) / 100.0,
        rating: (rating * 10.0).round() / 10.0,
        reviews,
    }
}

fn asin(rng: &mut Rng) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut id = String::from("B0");
    let mut bits = rng.next_u64();
    for _ in 0..8 {
        id.push(char::from(ALPHABET[(bits % 36) as usize]));
        bits /= 36;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_is_the_same_every_time_and_big_enough() {
        let a = Catalog::generate(7, DEFAULT_SIZE);
        let b = Catalog::generate(7, DEFAULT_SIZE);
        assert!(a.products.len() >= 11_000, "{}", a.products.len());
        assert_eq!(a.products, b.products);
        assert!(a
            .products
            .iter()
            .all(|p| p.asin.len() == 10 && p.asin.starts_with("B0")));
        let parts = a.products.iter().filter(|p| p.is_part()).count();
        assert!(parts > 200, "{parts} parts");
    }

    #[test]
    fn a_search_returns_thousands_and_counts_every_match() {
        let catalog = Catalog::generate(7, DEFAULT_SIZE);
        let keywords = vec!["laptop stand".to_owned(), "laptop riser".to_owned()];
        let (hits, total) = catalog.search(&keywords, 100);
        assert_eq!(hits.len(), 100);
        assert!(total > 500, "{total}");
        assert!(hits
            .iter()
            .all(|p| p.title.to_lowercase().contains("laptop")));
    }
}
